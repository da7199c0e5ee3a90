"""Linear, spherical and natural interpolation between the latents of two images.

The natural path is the rendered ``--sequence`` between the same two endpoints (only one factor moves): encoding
every step of it shows how the model's latent space lays out a real articulation, against the straight line
(linear) and the great circle (spherical) between the endpoint latents.
"""

from __future__ import annotations

import numpy as np
import torch


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
def interpolation_probe(model, group: dict) -> dict:
    """Compare the three paths on one sequence group (from latentds.sequence_groups).

    Returns {"factor", "values", "natural", "linear", "spherical" (each (K, D) latents), "images" (4K images:
    rendered, natural decoded, linear decoded, spherical decoded), "image_mse": {path: per-step MSE to the
    rendered images}, "factor_correlation": {path: Pearson r of the position along z1 - z0 with the factor}}.
    """
    device = next(model.parameters()).device
    model.eval()
    real = group["images"].to(device)
    natural = model.encode(real).float()
    t = torch.linspace(0, 1, real.shape[0], device=device)
    paths = {"natural": natural, "linear": lerp(natural[0], natural[-1], t),
             "spherical": slerp(natural[0], natural[-1], t)}
    decoded = {name: model.decode(z).float() for name, z in paths.items()}
    axis = natural[-1] - natural[0]
    values = group["values"].numpy()
    correlation = {}
    for name, z in paths.items():
        position = ((z - natural[0]) @ axis / axis.dot(axis).clamp_min(1e-12)).cpu().numpy()
        ok = position.std() > 0 and values.std() > 0
        correlation[name] = float(np.corrcoef(position, values)[0, 1]) if ok else float("nan")
    mse = {name: ((d - real) ** 2).flatten(1).mean(1).cpu().tolist() for name, d in decoded.items()}
    images = torch.cat([real.float(), decoded["natural"], decoded["linear"], decoded["spherical"]]).cpu()
    return {"factor": group["factor"], "values": values.tolist(), **{k: v.cpu() for k, v in paths.items()},
            "images": images, "image_mse": mse, "factor_correlation": correlation}
