"""The FactorVAE score on cuboid chains: batches with one factor fixed are *rendered* (fresh samples, as the
score requires), with this process's renderer."""

from __future__ import annotations

import numpy as np
import torch

from latentds.analysis.scores import factor_vae_score
from latentds.render.factors import CUBOID, FACTORS_BY_NAME, PRESETS, SEQUENCE_FACTORS, sample_labels, set_factor

SEED_STREAM = 987_654_321  # far from render seeds users pick, so probe samples are not training samples


def cuboid_factor_vae(model, *, preset: str = "varied", size: int | None = None, factors: list[str] | None = None,
                      batch_size: int = 64, n_train: int = 100, n_eval: int = 50, n_variance: int = 2000,
                      seed: int = 0) -> dict:
    """FactorVAE score of ``model``'s encoder over the continuous factors of ``preset`` (default: all that vary),
    each fixed in turn at a random value of its range while everything else is drawn afresh and rendered."""
    from latentds.render.renderer import process_renderer  # noqa: PLC0415  (imports pyrender)

    size = size or model.config.image_size
    names = factors or [f for f in SEQUENCE_FACTORS if f in PRESETS[preset].varies]
    renderer = process_renderer(size, CUBOID)
    device = next(model.parameters()).device
    counter = iter(range(10**12))

    def fresh(rng) -> dict:
        return sample_labels(preset, SEED_STREAM + seed, int(rng.integers(2**40)) + next(counter), size)

    def render(labels_list) -> torch.Tensor:
        pixels = np.stack([renderer.render(labels)["rgb"] for labels in labels_list])
        return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(127.5).sub(1)

    def sample_random(n, rng):
        return render([fresh(rng) for _ in range(n)])

    def sample_fixed(k, n, rng):
        f = FACTORS_BY_NAME[names[k]]
        value = float(rng.uniform(f.low, f.high))
        return render([set_factor(fresh(rng), names[k], value) for _ in range(n)])

    @torch.no_grad()
    def encode(images):
        model.eval()
        return model.encode(images.to(device)).float().cpu().numpy()

    result = factor_vae_score(encode, sample_fixed, len(names), sample_random=sample_random, batch_size=batch_size,
                              n_train=n_train, n_eval=n_eval, n_variance=n_variance, seed=seed)
    result["factors"] = names
    return result
