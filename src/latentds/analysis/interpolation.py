"""Linear, spherical and natural interpolation between the latents of two images, and walks between prior codes.

The natural path is the rendered ``--sequence`` between the same two endpoints (only one factor moves): encoding
every step of it shows how the model's latent space lays out a real articulation, against the straight line
(linear) and the great circle (spherical) between the endpoint latents.

``prior_walks`` needs no encoder (it serves generators such as DCGAN too): it walks both ways between pairs of
codes drawn from the model's prior. Under a Gaussian prior the straight line dips towards the origin mid-way
(where codes are rare), the great circle keeps the endpoints' norms: the reason spherical walks are preferred.
"""

from __future__ import annotations

import numpy as np
import torch

from latentds.analysis.device import ready
from latentds.analysis.labels import is_constant


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(steps, D) points on the segment from z0 to z1 at fractions t."""
    return z0[None] + t[:, None] * (z1 - z0)[None]


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(steps, D) points on the great circle from z0 to z1 (norms interpolated linearly); lerp when parallel."""
    n0, n1 = z0.norm(), z1.norm()
    u0, u1 = z0 / n0, z1 / n1
    omega = torch.arccos((u0 @ u1).clamp(-1.0, 1.0))
    if omega.abs() < 1e-6:
        return lerp(z0, z1, t)
    direction = (torch.sin((1 - t)[:, None] * omega) * u0 + torch.sin(t[:, None] * omega) * u1) / torch.sin(omega)
    return direction * (n0 + t * (n1 - n0))[:, None]


@torch.no_grad()
def latent_paths(model, group: dict) -> dict:
    """The three paths of one sequence group, encoding only (no decoder needed): {"natural": the group's images
    encoded, "linear", "spherical": interpolations between its endpoints}, each (K, D) on the model's device."""
    device = ready(model)
    natural = model.encode(group["images"].to(device)).float()
    t = torch.linspace(0, 1, natural.shape[0], device=device)
    return {"natural": natural, "linear": lerp(natural[0], natural[-1], t),
            "spherical": slerp(natural[0], natural[-1], t)}


@torch.no_grad()
def interpolation_probe(model, group: dict) -> dict:
    """Compare the three paths on one sequence group (from latentds.sequence_groups).

    Returns {"factor", "values", "natural", "linear", "spherical" (each (K, D) latents), "images" (4K images:
    rendered, natural decoded, linear decoded, spherical decoded), "image_mse": {path: per-step MSE to the
    rendered images}, "factor_correlation": {path: Pearson r of the position along z1 - z0 with the factor}}.
    """
    paths = latent_paths(model, group)
    natural = paths["natural"]
    real = group["images"].to(natural.device)
    decoded = {name: model.decode(z).float() for name, z in paths.items()}
    axis = natural[-1] - natural[0]
    values = group["values"].numpy()
    correlation = {}
    for name, z in paths.items():
        position = ((z - natural[0]) @ axis / axis.dot(axis).clamp_min(1e-12)).cpu().numpy()
        ok = not is_constant(position) and not is_constant(values)
        correlation[name] = float(np.corrcoef(position, values)[0, 1]) if ok else float("nan")
    mse = {name: ((d - real) ** 2).flatten(1).mean(1).cpu().tolist() for name, d in decoded.items()}
    images = torch.cat([real.float(), decoded["natural"], decoded["linear"], decoded["spherical"]]).cpu()
    return {"factor": group["factor"], "values": values.tolist(), **{k: v.cpu() for k, v in paths.items()},
            "images": images, "image_mse": mse, "factor_correlation": correlation}


@torch.no_grad()
def prior_walks(model, *, pairs: int = 4, steps: int = 6, seed: int = 0) -> dict:
    """Linear and spherical walks of ``steps`` steps between ``pairs`` pairs of codes from ``model.prior`` (codes
    2k and 2k + 1 of ``model.prior(2 * pairs, generator seeded seed)``).

    Returns {"linear", "spherical": (pairs, steps, D) codes; "images": (2 * pairs * steps, C, S, S), rows pair k
    linear then pair k spherical; "image_step_mse": {path: mean squared difference between consecutive decoded
    images, averaged over steps and pairs}; "code_norm_by_step": {path: mean code norm over pairs at each step};
    "mean_code_norm": {path: mean code norm along the path}; "endpoint_norm": mean norm of the endpoint codes;
    "norm_ratio_min": {path: the smallest ratio along the path of a code's norm to the norm interpolated linearly
    between its endpoints' norms (1 on the great circle, below 1 on the chord), averaged over pairs}}.
    """
    ready(model)
    codes = model.prior(2 * pairs, torch.Generator().manual_seed(seed)).float()
    t = torch.linspace(0, 1, steps, device=codes.device)
    ends = codes.view(pairs, 2, -1)
    paths = {"linear": torch.stack([lerp(a, b, t) for a, b in ends]),
             "spherical": torch.stack([slerp(a, b, t) for a, b in ends])}
    end_norms = ends.norm(dim=2)  # (pairs, 2)
    expected = end_norms[:, :1] + t[None] * (end_norms[:, 1:] - end_norms[:, :1])  # (pairs, steps)
    decoded, result = {}, {"image_step_mse": {}, "code_norm_by_step": {}, "mean_code_norm": {}, "norm_ratio_min": {}}
    for name, z in paths.items():
        images = model.decode(z.reshape(pairs * steps, -1)).float()
        decoded[name] = images.view(pairs, steps, *images.shape[1:])
        result["image_step_mse"][name] = float((decoded[name][:, 1:] - decoded[name][:, :-1]).pow(2).mean())
        norms = z.norm(dim=2)  # (pairs, steps)
        result["code_norm_by_step"][name] = norms.mean(0).cpu().tolist()
        result["mean_code_norm"][name] = float(norms.mean())
        result["norm_ratio_min"][name] = float((norms / expected.clamp_min(1e-12)).mean(0).min())
    result["endpoint_norm"] = float(end_norms.mean())
    images = torch.stack([decoded["linear"], decoded["spherical"]], dim=1).reshape(-1, *decoded["linear"].shape[2:])
    return {"linear": paths["linear"].cpu(), "spherical": paths["spherical"].cpu(), "images": images.cpu(), **result}
