"""PCA of the latents: decoded strips along the first components, and each component's correlation with factors."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA

from latentds.analysis.device import ready
from latentds.analysis.encode import Codes
from latentds.analysis.labels import is_constant


def pca_probe(codes: Codes, model, *, components: int = 5, steps: int = 7, sigmas: float = 3.0,
              factor_names: list[str] | None = None) -> dict:
    """Fit PCA on ``codes.latents``; decode mean + t*sigma_i*v_i for t in [-sigmas, sigmas] along the first
    ``components`` components (one strip each); correlate every component's scores with every known factor.

    Returns {"explained_variance_ratio", "strips": (components*steps, 3, S, S) tensor, "steps",
    "factor_correlation": {component: {factor: pearson r}}} (factor_correlation empty without factors).
    """
    latents = codes.latents.astype(np.float64)
    k = min(components, latents.shape[1], latents.shape[0])
    pca = PCA(n_components=k, random_state=0).fit(latents)
    scale = np.sqrt(pca.explained_variance_)
    t = np.linspace(-sigmas, sigmas, steps)
    points = pca.mean_ + (t[None, :, None] * scale[:, None, None] * pca.components_[:, None, :])  # (k, steps, D)
    device = ready(model)
    with torch.no_grad():
        strips = model.decode(torch.as_tensor(points.reshape(-1, latents.shape[1]), dtype=torch.float32,
                                              device=device)).float().cpu()
    correlation = {}
    if codes.factors is not None and factor_names is not None:
        projected = pca.transform(latents)
        for i in range(k):
            row = {}
            for j, name in enumerate(factor_names):
                present = codes.factor_mask[:, j]
                values = codes.factors[present, j]
                if present.sum() > 2 and not is_constant(values):
                    row[name] = float(np.corrcoef(projected[present, i], values)[0, 1])
            correlation[f"pc{i + 1}"] = row
    return {"explained_variance_ratio": pca.explained_variance_ratio_.tolist(), "strips": strips, "steps": steps,
            "factor_correlation": correlation}
