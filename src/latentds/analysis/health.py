"""Health gates: did this model train? Measured before any verdict is drawn from it.

Each gate compares the model with the data or with a trivial baseline on the same images and passes or fails
against a fixed threshold (GATES: the threshold and why). A gate that does not apply to a model (no decoder, no
encoder, no s/z split) is absent, not passed.

- ``sample_diversity``: mean pairwise MSE between prior samples / the same between data images (0.1 to 2). A
  mode-collapsed generator draws the same image for every code (the audit's DCGAN: 0.00042 / 0.060 = 0.007); one
  that draws noise differs from itself far more than the data does (a DCGAN's speckle scored 1.29).
- ``reconstruction``: the reconstructions' MSE / the better of two trivial reconstructions -- one uniform
  background-coloured image, the data's mean image (<= 0.8), on the whole image and, where the data has a
  background (renders), on the foreground pixels alone (an all-black image scores SSIM 0.83 on renders, so SSIM
  alone cannot tell a model from nothing). A blurred input is reported beside as a reference, not gated.
- ``colour`` (data with a background and coloured foregrounds, e.g. Varied renders): the foreground pixels' chroma
  (each pixel minus the mean of its three channels: colour without brightness) of the reconstructions against the
  data's, as an MSE / the better of a grey image's (chroma 0) and the mean image's (<= 0.8). A model that draws the
  right shapes in grey passes ``reconstruction`` but fails this.
- ``sample_colour`` (data whose images differ in colour, e.g. Varied renders): how much the prior samples' mean
  foreground chroma varies across samples / the same for data images (>= 0.25). A generator whose samples have
  the right shapes in one colour scheme passes ``sample_diversity`` but fails this (the gan-walks DCGAN: pink-white
  chains in varied poses).
- ``decoder_sensitivity``: per-pixel spread of the reconstructions across inputs / the data's (>= 0.25): a decoder
  that ignores its input draws one image (the audit's cycle VAE: 0.0025 / 0.039 = 0.06).
- ``swap_grid`` (s/z models): spread of decode(s_i, z_j) over i with j fixed, and over j with i fixed, each / the
  data's (>= 0.05): the decoder uses both parts of its input.
- ``active_units``: latent dimensions whose posterior mean varies across the data, Var_x(E[z_d | x]) > 0.01
  (Burda et al. 2016), at least 1: a posterior collapsed onto the prior encodes nothing.
- ``discriminator`` (adversarial families, from the training log): mean discriminator accuracy over the last
  quarter of training < 0.99 -- a discriminator that wins every batch gives the generator no signal.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from latentds.analysis.gates import GATES

ACTIVE_VARIANCE = 0.01
PAIRS = 256  # images for the pairwise distances
SWAP = 16  # images of the swap grid (16 x 16 decodes)


def gate(name: str, value: float | None, **detail) -> dict:
    """One gate's record: its value, threshold, pass/fail and, if failed, what that means."""
    op, threshold, meaning = GATES[name]
    if value is None or not np.isfinite(value):
        passed = False
    else:
        passed = {">=": lambda: value >= threshold, "<=": lambda: value <= threshold, "<": lambda: value < threshold,
                  "between": lambda: threshold[0] <= value <= threshold[1]}[op]()
    record = {"value": None if value is None or not np.isfinite(value) else float(value), "threshold": threshold,
              "op": op, "passed": bool(passed), **detail}
    if not passed:
        record["means"] = meaning
    return record


def mean_pairwise_mse(images: torch.Tensor) -> float:
    """Mean over distinct pairs of the per-pixel MSE between two images."""
    x = images[:PAIRS].double().flatten(1)
    n, pixels = x.shape
    squared = x.pow(2).sum(1)
    distances = (squared[:, None] + squared[None, :] - 2 * x @ x.T).clamp_min(0) / pixels
    return float(distances.sum() / (n * (n - 1))) if n > 1 else float("nan")


def spread(images: torch.Tensor) -> float:
    """Per-pixel standard deviation across the images, averaged over the pixels."""
    return float(images.double().std(0).mean())


def background(images: torch.Tensor) -> torch.Tensor:
    """(3,) the data's background colour: the median of every image's border pixels."""
    x = images.double()
    border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
    return border.permute(1, 0, 2).flatten(1).median(1).values


def foreground(images: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) bool: pixels that differ from the background colour by more than 0.1 in some channel."""
    return (images.double() - colour[None, :, None, None]).abs().amax(1, keepdim=True) > 0.1


def masked_mse(real: torch.Tensor, other: torch.Tensor, mask: torch.Tensor) -> float:
    """MSE over the masked pixels (all channels), pooled over the images."""
    error = (real.double() - other.double()).pow(2) * mask
    return float(error.sum() / (mask.sum() * real.shape[1]).clamp_min(1))


def trivial_reconstructions(real: torch.Tensor) -> dict[str, torch.Tensor]:
    """The baselines a model must beat: a uniform background-coloured image, the data's mean image, and the input
    blurred (Gaussian, sigma = size / 16)."""
    from torchvision.transforms.functional import gaussian_blur  # noqa: PLC0415

    colour = background(real).to(real.dtype)
    size = real.shape[-1]
    sigma = max(size / 16, 0.5)
    kernel = 2 * int(3 * sigma) + 1
    return {"background": colour[None, :, None, None].expand_as(real).contiguous(),
            "mean_image": real.mean(0, keepdim=True).expand_as(real).contiguous(),
            "blurred": gaussian_blur(real, [kernel, kernel], [sigma, sigma])}


def image_baselines(real: torch.Tensor, recon: torch.Tensor | None = None) -> dict:
    """MSE and SSIM (whole image and, where the data has a background, foreground pixels only) of ``recon`` (if
    given) and of each trivial reconstruction of ``real``, with the foreground's share of the pixels."""
    from latentds.analysis.image_metrics import per_image_mse, per_image_pcc, per_image_ssim  # noqa: PLC0415

    mask = foreground(real, background(real))
    share = float(mask.double().mean())
    has_background = 0.005 < share < 0.95
    candidates = trivial_reconstructions(real) | ({"model": recon} if recon is not None else {})
    result = {"foreground_share": share}
    for name, images in candidates.items():
        result[name] = {"mse": float(per_image_mse(real.double(), images.double()).mean()),
                        "ssim": float(per_image_ssim(real, images).nanmean()),
                        "pcc": _nan_to_none(float(per_image_pcc(real.double(), images.double()).nanmean())),
                        "foreground_mse": masked_mse(real, images, mask) if has_background else None,
                        "foreground_ssim": float(per_image_ssim(real, images, mask).nanmean())
                        if has_background else None}
    return result


def _nan_to_none(value: float) -> float | None:
    return value if np.isfinite(value) else None  # e.g. the correlation with a constant image: undefined


def reconstruction_gate(baselines: dict) -> dict:
    """The reconstruction gate from image_baselines(real, recon): the worst of the whole-image and foreground
    ratios of the model's error to the better trivial baseline's."""
    model = baselines["model"]
    ratios = {}
    for key in ("mse", "foreground_mse"):
        best = min(baselines[b][key] for b in ("background", "mean_image") if baselines[b][key] is not None) \
            if all(baselines[b][key] is not None for b in ("background", "mean_image")) else None
        if model[key] is not None and best:
            ratios[key] = model[key] / best
    worst = max(ratios.values()) if ratios else None
    return gate("reconstruction", worst, ratios=ratios)


COLOURFUL = 1e-3  # mean squared foreground chroma below which the data counts as grey (the gate is absent)


def chroma(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) each pixel minus the mean of its channels: its colour without its brightness."""
    x = images.double()
    return x - x.mean(1, keepdim=True)


def _coloured_foreground(real: torch.Tensor) -> torch.Tensor | None:
    """The foreground mask of ``real`` where the data has a background and coloured foregrounds, else None."""
    if real.shape[1] != 3:
        return None
    mask = foreground(real, background(real))
    share = float(mask.double().mean())
    target = chroma(real)
    energy = masked_mse(target, torch.zeros_like(target), mask)
    return mask if 0.005 < share < 0.95 and energy >= COLOURFUL else None


def colour_gate(real: torch.Tensor, recon: torch.Tensor) -> dict | None:
    """The colour gate: foreground chroma MSE of ``recon`` against ``real`` / the better of a grey image's (chroma
    0) and the mean image's; None where the data has no background or no colour (grey data, full-frame images)."""
    mask = _coloured_foreground(real)
    if mask is None:
        return None
    target = chroma(real)
    energy = masked_mse(target, torch.zeros_like(target), mask)
    model = masked_mse(target, chroma(recon), mask)
    mean_image = masked_mse(target, chroma(real.mean(0, keepdim=True).expand_as(real)), mask)
    best = min(energy, mean_image)
    return gate("colour", model / best if best > 0 else None, model=model, grey=energy, mean_image=mean_image)


COLOUR_VARIES = 0.02  # colour_spread below which the data's images share their colours (Phi renders 0.004, Varied 0.06)


def colour_spread(images: torch.Tensor, colour: torch.Tensor) -> float:
    """How much the images' colours differ: the total variance across images of each image's mean foreground
    chroma (3 numbers); an image without foreground pixels counts as chroma 0."""
    mask = foreground(images, colour).double()
    pixels = mask.sum((1, 2, 3)).clamp_min(1)
    means = (chroma(images) * mask).sum((2, 3)) / pixels[:, None]
    return float(means.var(0).sum()) if len(images) > 1 else float("nan")


def sample_colour_gate(real: torch.Tensor, samples: torch.Tensor) -> dict | None:
    """The sample-colour gate: colour_spread of prior samples / the data's; None where the data has no background,
    no colour, or colours that do not differ between images (e.g. Phi renders: every chain has the same colours)."""
    if _coloured_foreground(real) is None:
        return None
    colour = background(real)
    data = colour_spread(real, colour)
    if not data >= COLOUR_VARIES:
        return None
    model = colour_spread(samples, colour)
    return gate("sample_colour", model / data, samples=model, data=data)


def active_units(latents: np.ndarray) -> dict:
    variances = np.asarray(latents, dtype=np.float64).var(0)
    count = int((variances > ACTIVE_VARIANCE).sum())
    return gate("active_units", count, of=int(len(variances)))


@torch.no_grad()
def swap_grid_gate(model, images: torch.Tensor, data_spread: float, device) -> dict:
    """decode(s_i, z_j) for the first SWAP images: spread over s (z fixed) and over z (s fixed) / the data's."""
    x = images[:SWAP].to(device)
    codes = model.encode(x)
    parts = model.partition()
    s, z = codes[:, parts["s"]], codes[:, parts["z"]]
    k = len(x)
    grid = model.decode(torch.cat([s[:, None].expand(k, k, -1), z[None, :].expand(k, k, -1)], 2).flatten(0, 1))
    grid = grid.float().cpu().view(k, k, *grid.shape[1:])  # [i: s of image i, j: z of image j]
    over_s = float(np.mean([spread(grid[:, j]) for j in range(k)])) / data_spread
    over_z = float(np.mean([spread(grid[i, :]) for i in range(k)])) / data_spread
    return gate("swap_grid", min(over_s, over_z), over_s=over_s, over_z=over_z)


def discriminator_gate(run_dir: str | Path, key: str = "discriminator/accuracy") -> dict | None:
    """The discriminator gate from a run's metrics.jsonl (None where the log has no discriminator accuracy)."""
    log = Path(run_dir) / "metrics.jsonl"
    if not log.is_file():
        return None
    values = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get(key), (int, float)):
            values.append(float(row[key]))
    if not values:
        return None
    last = values[-max(1, len(values) // 4):]
    return gate("discriminator", float(np.mean(last)), min=min(last), max=max(last), rows=len(last))


def overall(gates: dict) -> dict:
    """{"trained": bool, "failed": [gate names]} of a run's gate records."""
    failed = [name for name, record in gates.items() if isinstance(record, dict) and not record.get("passed", True)]
    return {"trained": not failed, "failed": failed}
