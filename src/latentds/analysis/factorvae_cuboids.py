"""The FactorVAE score on cuboid chains: batches with one factor fixed are *rendered* (fresh samples, as the
score requires), with this process's renderer.

Vote counts: ``votes="quick"`` (default) takes 100 training / 50 evaluation votes -- a standard error of up to
about 0.07 on the score, enough to tell a disentangled model from an entangled one; ``votes="reference"`` takes
disentanglement_lib's 10,000 / 5,000 votes and 10,000 images for the global variances (standard error below 0.01,
but 960,000 rendered images at batch size 64): use it for numbers to compare with papers. Every result records
its vote counts and the binomial standard error of the evaluation accuracy.
"""

from __future__ import annotations

import numpy as np
import torch

from latentds.analysis.device import ready
from latentds.analysis.disentanglement import factor_vae_score
from latentds.errors import InvalidParameterError
from latentds.render.factors import CUBOID, FACTORS_BY_NAME, PRESETS, SEQUENCE_FACTORS, sample_labels, set_factor

SEED_STREAM = 987_654_321  # far from render seeds users pick, so probe samples are not training samples
# (n_train, n_eval, n_variance) per named vote setting; "reference" is disentanglement_lib's factor_vae config.
VOTES = {"quick": (100, 50, 2_000), "reference": (10_000, 5_000, 10_000)}


def cuboid_factor_vae(model, *, preset: str = "varied", size: int | None = None, factors: list[str] | None = None,
                      batch_size: int = 64, votes: str = "quick", n_train: int | None = None,
                      n_eval: int | None = None, n_variance: int | None = None, seed: int = 0) -> dict:
    """FactorVAE score of ``model``'s encoder over the continuous factors of ``preset`` (default: all that vary),
    each fixed in turn at a random value of its range while everything else is drawn afresh and rendered.

    ``votes``: "quick" (100 train / 50 eval votes, 2,000 images for the variances) or "reference" (10,000 /
    5,000 / 10,000, as disentanglement_lib); ``n_train``, ``n_eval`` and ``n_variance`` override single counts.
    The result's settings record the vote setting, and "factor_vae_eval_accuracy_se" the binomial standard error
    of the score.
    """
    from latentds.render.renderer import process_renderer  # noqa: PLC0415  (imports pyrender)

    if votes not in VOTES:
        raise InvalidParameterError(f"votes must be one of {', '.join(map(repr, VOTES))}, got {votes!r}")
    default_train, default_eval, default_variance = VOTES[votes]
    n_train = default_train if n_train is None else n_train
    n_eval = default_eval if n_eval is None else n_eval
    n_variance = default_variance if n_variance is None else n_variance
    size = size or model.config.image_size
    names = factors or [f for f in SEQUENCE_FACTORS if f in PRESETS[preset].varies]
    renderer = process_renderer(size, CUBOID)
    device = ready(model)
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
        return model.encode(images.to(device)).float().cpu().numpy()

    result = factor_vae_score(encode, sample_fixed, len(names), sample_random=sample_random, batch_size=batch_size,
                              n_train=n_train, n_eval=n_eval, n_variance=n_variance, seed=seed)
    custom = (n_train, n_eval, n_variance) != VOTES[votes]
    result["settings"]["votes"] = f"{votes} (counts overridden)" if custom else votes
    result["settings"].update(preset=preset, image_size=size)
    result["factors"] = names
    return result
