"""Distances between two sets of image features (N, d): FID with a bootstrap interval, and KID.

    a, b = features(real, network), features(fake, network)   # float64 (N, d), each image once
    distances(a, b)   # {"fid", "fid_ci", "kid", "kid_std", "kid_subset_size", "n", "n_real", "n_fake"}

FID is torchmetrics' formula (``FrechetInceptionDistance``: unbiased covariances, ||mu1 - mu2||^2 + tr(S1 + S2) -
2 tr sqrt(S1 S2), the last from the eigenvalues of S1 S2); when there are more features than images (Inception's
2048 on 1,000 images) tr sqrt(S1 S2) is taken, exactly, as the nuclear norm of the centred features' cross product
A B^T / sqrt((n - 1)(m - 1)), which is far cheaper there. ``fid_ci`` is the 2.5 / 97.5 percentile interval of FID
over BOOTSTRAP resamples (both sets drawn with replacement, seeded), shifted by the bootstrap's bias so that it is
centred on the estimate: it says how much the number moves with the draw of images at this n. The shift is needed:
a resample repeats about a third of its images, which FID reads as extra distance (for two sets of 1,000 draws of
the same 64-d Gaussian, FID 2.2 and unshifted bootstrap percentiles [4.1, 4.6], which exclude the estimate). The
bootstrap's spread is wider than the estimator's own (about twice at the floor, measured on Gaussians): the
interval is conservative. FID itself is biased upward at finite n; the real-vs-real floor at the same n measures
that bias, so compare a model's interval with the floor's.

KID follows torchmetrics' ``KernelInceptionDistance``: polynomial kernel k(x, y) = (x.y / d + 1)^3, the unbiased
MMD^2 estimate on KID_SUBSETS random subsets of min(KID_SUBSET_SIZE, n, m) images per side (torchmetrics' defaults
100 and 1000; drawn here from a seeded generator), mean and population standard deviation over the subsets. Unlike
FID it is unbiased in the number of images, so values at different n compare.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from latentds.analysis.image_metrics import _batches, _eval_mode, _match
from latentds.errors import InvalidParameterError

BOOTSTRAP = 200  # resamples of the FID interval
CI_PERCENTILES = (2.5, 97.5)
KID_SUBSETS, KID_SUBSET_SIZE, KID_DEGREE, KID_COEF = 100, 1000, 3, 1.0
SEED = 0


def features(images: torch.Tensor, network: nn.Module, *, prepare=None, batch_size: int = 256) -> torch.Tensor:
    """(N, d) float64 CPU features of ``images`` ((N, 3, H, W) in [-1, 1]) from ``network`` in eval mode;
    ``prepare`` maps a batch first (e.g. to uint8 for Inception)."""
    out = []
    with _eval_mode(network), torch.no_grad():
        for batch in _batches(images.detach(), batch_size):
            batch = prepare(batch) if prepare else _match(batch, network)
            out.append(network(batch).reshape(len(batch), -1).double().cpu())
    return torch.cat(out)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID between feature sets ``a`` (n, d) and ``b`` (m, d), torchmetrics' formula in float64."""
    a, b = _check(a, "a"), _check(b, "b")
    ca, cb = a - a.mean(0), b - b.mean(0)
    mean_term = (a.mean(0) - b.mean(0)).square().sum()
    cov_a, cov_b = ca.T @ ca / (len(a) - 1), cb.T @ cb / (len(b) - 1)
    if a.shape[1] > min(len(a), len(b)):  # more features than images: the same trace, from the n x m product
        root = torch.linalg.svdvals(ca @ cb.T).sum() / ((len(a) - 1) * (len(b) - 1)) ** 0.5
    else:
        root = torch.linalg.eigvals(cov_a @ cov_b).sqrt().real.sum()
    return float(mean_term + cov_a.trace() + cov_b.trace() - 2 * root)


def fid_interval(a: torch.Tensor, b: torch.Tensor, *, resamples: int = BOOTSTRAP, seed: int = SEED) -> list[float]:
    """[lo, hi]: the CI_PERCENTILES of FID over ``resamples`` bootstrap resamples of both sets (seeded), shifted by
    the bootstrap's bias (the resamples' mean minus the estimate) so that it is centred on the estimate."""
    generator = torch.Generator().manual_seed(seed)
    values = np.array([frechet_distance(a[torch.randint(len(a), (len(a),), generator=generator)],
                                        b[torch.randint(len(b), (len(b),), generator=generator)])
                       for _ in range(resamples)])
    bias = values.mean() - frechet_distance(a, b)
    return [float(v - bias) for v in np.percentile(values, CI_PERCENTILES)]


def kid(a: torch.Tensor, b: torch.Tensor, *, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
        seed: int = SEED) -> dict:
    """{"kid", "kid_std", "kid_subset_size"}: torchmetrics' KID convention (see the module docstring)."""
    a, b = _check(a, "a"), _check(b, "b")
    m = min(subset_size, len(a), len(b))
    generator, gamma = torch.Generator().manual_seed(seed), 1.0 / a.shape[1]
    # every kernel value once; a subset's sums are then s^T K s with s its 0/1 indicator (no image repeats)
    k_aa, k_bb, k_ab = ((p @ q.T * gamma + KID_COEF) ** KID_DEGREE for p, q in ((a, a), (b, b), (a, b)))
    values = []
    for _ in range(subsets):
        x = _indicator(torch.randperm(len(a), generator=generator)[:m], len(a))
        y = _indicator(torch.randperm(len(b), generator=generator)[:m], len(b))
        within = (x @ k_aa @ x - k_aa.diagonal() @ x + y @ k_bb @ y - k_bb.diagonal() @ y) / (m * (m - 1))
        values.append(within - 2 * (x @ k_ab @ y) / m**2)
    values = torch.stack(values)
    return {"kid": float(values.mean()), "kid_std": float(values.std(unbiased=False)), "kid_subset_size": m}


def _indicator(index: torch.Tensor, n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.float64).index_fill_(0, index, 1.0)


def distances(a: torch.Tensor, b: torch.Tensor, *, resamples: int = BOOTSTRAP, seed: int = SEED) -> dict:
    """FID, its bootstrap interval and KID between feature sets ``a`` (real) and ``b``."""
    return {"fid": frechet_distance(a, b), "fid_ci": fid_interval(a, b, resamples=resamples, seed=seed),
            **kid(a, b, seed=seed), "n": min(len(a), len(b)), "n_real": len(a), "n_fake": len(b)}


def _check(f: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(f, torch.Tensor) or f.ndim != 2:
        shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
        raise InvalidParameterError(f"features {what} must be a (N, d) tensor, got {shape}")
    if len(f) < 2:
        raise InvalidParameterError(f"FID and KID need at least 2 images per set, got {len(f)} in {what}")
    return f.double()
