"""Latent arithmetic: an attribute vector as the difference of two groups' mean latents, added to other latents."""

from __future__ import annotations

import numpy as np
import torch

from latentds.analysis.device import ready


def attribute_vector(latents: np.ndarray, group_a: np.ndarray, group_b: np.ndarray) -> np.ndarray:
    """mean(latents[group_a]) - mean(latents[group_b]); groups are boolean masks or index arrays."""
    a, b = latents[group_a], latents[group_b]
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both groups need at least one sample")
    return a.mean(axis=0) - b.mean(axis=0)


@torch.no_grad()
def apply_vector(model, latents: np.ndarray, vector: np.ndarray, scales=(0.0, 0.5, 1.0, 1.5)) -> torch.Tensor:
    """Decode latents + s * vector for each scale s: (len(latents) * len(scales), C, S, S), one row per latent."""
    device = ready(model)
    z = torch.as_tensor(latents, dtype=torch.float32, device=device)
    v = torch.as_tensor(vector, dtype=torch.float32, device=device)
    steps = torch.stack([z + s * v for s in scales], dim=1).reshape(-1, z.shape[1])
    return model.decode(steps).float().cpu()


LABELLED = 512  # generated samples a labeller predicts factors for, to choose arithmetic groups from
SCALES = (0.0, 0.5, 1.0, 1.5)


@torch.no_grad()
def predict(labeller, images: torch.Tensor, batch: int = 128) -> np.ndarray:
    """``labeller.predict`` (e.g. a trained e2e_cnn) on images in [-1, 1], resized to the labeller's size."""
    import torch.nn.functional as F  # noqa: PLC0415

    device = ready(labeller)
    size = labeller.config.image_size
    out = []
    for chunk in images.split(batch):
        chunk = chunk.to(device).float()
        if chunk.shape[-1] != size:
            chunk = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(labeller.predict(chunk).float().cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def label_generated(model, labeller, n: int = LABELLED, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, D), the labeller's predictions (n, len(labeller.output_names))) of ``n`` samples decoded from
    prior codes drawn with ``seed``."""
    codes = model.prior(n, torch.Generator().manual_seed(seed))
    ready(model)
    images = torch.cat([model.decode(chunk).float().cpu() for chunk in codes.split(64)])
    return codes.float().cpu().numpy(), predict(labeller, images)


def quartile_groups(predictions: np.ndarray, names: list[str], spans: np.ndarray,
                    factor: str | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """(factor, upper-quartile mask, lower-quartile mask) of the predicted ``factor``; by default the factor whose
    predictions spread most relative to its range (``spans``)."""
    if factor is None:
        j = int(np.argmax(predictions.std(axis=0) / np.maximum(spans, 1e-9)))
    else:
        j = names.index(factor)
    lo, hi = np.quantile(predictions[:, j], [0.25, 0.75])
    return names[j], predictions[:, j] >= hi, predictions[:, j] <= lo


@torch.no_grad()
def factor_shift(model, labeller, latents: np.ndarray, vector: np.ndarray, column: int,
                 scales=SCALES) -> list[float]:
    """The labeller's mean prediction of factor ``column`` over the decoded ``latents + s * vector``, per scale:
    rising with s when the vector carries the factor."""
    images = apply_vector(model, latents, vector, scales)  # one row (len(scales) images) per latent
    predicted = predict(labeller, images)[:, column].reshape(len(latents), len(scales))
    return [float(v) for v in predicted.mean(axis=0)]


CONTROL_DRAWS = 8  # random directions of the vector's norm, the control of its effect
MEASURED = 64  # latents the effect and its control are measured on


@torch.no_grad()
def predicted(model, labeller, latents: np.ndarray, column: int) -> np.ndarray:
    """The labeller's prediction of factor ``column`` on the images decoded from ``latents``."""
    device = ready(model)
    z = torch.as_tensor(np.asarray(latents), dtype=torch.float32, device=device)
    decoded = torch.cat([model.decode(chunk).float().cpu() for chunk in z.split(64)])
    return predict(labeller, decoded)[:, column]


def effect_with_control(model, labeller, latents: np.ndarray, vector: np.ndarray, column: int,
                        draws: int = CONTROL_DRAWS, seed: int = 0) -> dict:
    """What adding ``vector`` to each of ``latents`` does to factor ``column`` as ``labeller`` predicts it, beside
    the same for random directions of the same norm (the control).

    ``effect``: the mean over the latents of prediction(z + vector) - prediction(z), ``effect_se`` its standard
    error over the latents. ``control_effect``: the same change for each of ``draws`` random directions (Gaussian,
    drawn with ``seed``, scaled to ``|vector|``), averaged over the latents, then over the draws; ``_se`` over the
    draws. A random direction moves the factor by about 0 on average; ``control_abs_effect`` is the mean size of
    its move, |change| per draw averaged over the draws (``_se`` over the draws): how far a step of that length in
    no chosen direction moves the factor either way."""
    latents = np.asarray(latents, dtype=np.float64)
    vector = np.asarray(vector, dtype=np.float64)
    before = predicted(model, labeller, latents, column)
    change = predicted(model, labeller, latents + vector, column) - before
    rng, norm = np.random.default_rng(seed), float(np.linalg.norm(vector))
    controls = []
    for _ in range(draws):
        direction = rng.standard_normal(vector.shape)
        direction *= norm / np.linalg.norm(direction)
        controls.append(float((predicted(model, labeller, latents + direction, column) - before).mean()))
    c, n = np.array(controls), len(latents)

    def se(values: np.ndarray) -> float:
        return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")

    return {"effect": float(change.mean()), "effect_se": se(change), "control_effect": float(c.mean()),
            "control_effect_se": se(c), "control_abs_effect": float(np.abs(c).mean()),
            "control_abs_effect_se": se(np.abs(c)), "control_draws": draws, "control_seed": seed,
            "measured_on": n}
