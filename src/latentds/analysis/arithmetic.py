"""Latent arithmetic: an attribute vector as the difference of two groups' mean latents, added to other latents."""

from __future__ import annotations

import numpy as np
import torch


def attribute_vector(latents: np.ndarray, group_a: np.ndarray, group_b: np.ndarray) -> np.ndarray:
    """mean(latents[group_a]) - mean(latents[group_b]); groups are boolean masks or index arrays."""
    a, b = latents[group_a], latents[group_b]
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both groups need at least one sample")
    return a.mean(axis=0) - b.mean(axis=0)


@torch.no_grad()
def apply_vector(model, latents: np.ndarray, vector: np.ndarray, scales=(0.0, 0.5, 1.0, 1.5)) -> torch.Tensor:
    """Decode latents + s * vector for each scale s: (len(latents) * len(scales), C, S, S), one row per latent."""
    device = next(model.parameters()).device
    z = torch.as_tensor(latents, dtype=torch.float32, device=device)
    v = torch.as_tensor(vector, dtype=torch.float32, device=device)
    steps = torch.stack([z + s * v for s in scales], dim=1).reshape(-1, z.shape[1])
    model.eval()
    return model.decode(steps).float().cpu()
