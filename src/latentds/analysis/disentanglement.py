"""Disentanglement scores of latent codes against ground-truth factors: MIG, DCI, SAP and the FactorVAE score.

Follows google-research/disentanglement_lib (archived, TF1), ``disentanglement_lib/evaluation/metrics/``. The
reference keeps arrays as (num_codes, num_points); here every array is (N, columns), one row per sample.
Settings reproduced from its study configs (``config/unsupervised_study_v1/metric_configs/*.gin``): 20-bin histogram
discretisation, MIG normalised by factor entropy, DCI with one ``GradientBoostingClassifier()`` (scikit-learn's
default of 100 boosting rounds, every latent considered at every split) per factor on at most 10,000 train / 5,000
test points, SAP with ``LinearSVC(C=0.01, class_weight="balanced")`` on discrete targets, FactorVAE score on batches
of 64 with dimensions pruned below a standard deviation of 0.05.

``scores(..., mode="reference")`` (the default) uses exactly those estimators, so its numbers are comparable with
the papers'; the DCI classifiers (one per factor) are fitted in parallel worker processes (joblib). ``mode="fast"`` boosts 10 rounds instead of 100: 6-10 times faster, but it inflates DCI disentanglement and
completeness, about 2.5-fold on entangled codes (fewer rounds concentrate the importance on fewer latents; figures
below): a quick look, never a number to compare with a paper. Every result records its settings and the library
versions, since scores also drift with scikit-learn versions (disentanglement_lib issue #33).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import joblib
import numpy as np
import scipy
import scipy.stats
import sklearn
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

import latentds
from latentds.errors import InvalidParameterError

MIN_SAMPLES = 10
DISCRETE_MAX_VALUES = 20  # a factor column with at most this many distinct values is discrete by default
# Boosting rounds of the DCI classifiers per mode: "reference" is scikit-learn's default, which disentanglement_lib
# uses; "fast" is ten times faster and inflates DCI on entangled codes (see the module docstring and MODE_NOTES).
DCI_N_ESTIMATORS = {"reference": 100, "fast": 10}
MODE_NOTES = {
    "reference": "disentanglement_lib's estimators (DCI: GradientBoostingClassifier(), 100 rounds): comparable with "
                 "published scores",
    "fast": "DCI with 10 boosting rounds instead of 100: inflates DCI disentanglement and completeness (2.5x on the "
            "entangled codes measured in disentanglement.py); for quick looks only, not comparable with published scores",
}
# Measured (latentds 0.1.0, scikit-learn 1.9.1, 2 shared cores), DCI on 2,000 x 32 latents against 10 continuous
# factors (20 bins each), 1,600 train / 400 test, (disentanglement, completeness) and seconds:
#                       reference (100 rounds)      fast (10 rounds)
#   copy of the factors   0.766, 0.717   251 s        0.882, 0.849   25 s
#   rotated (entangled)   0.037, 0.051   282 s        0.097, 0.117   48 s   (fast: 2.6x too high)
#   nonlinear mix         0.049, 0.035   165 s        0.123, 0.087   21 s   (fast: 2.5x too high)
# Fewer training points are not a safe shortcut: on 2,000 x 16 latents with 5 factors, DCI disentanglement at
# 1,600 / 800 / 400 training points was 0.777 / 0.751 / 0.710 (copy), 0.034 / 0.023 / 0.021 (rotated) and
# 0.161 / 0.121 / 0.094 (nonlinear), against a split-to-split spread of 0.001-0.006 at 1,600: every point available
# (up to the reference's 10,000) is used.
MAX_TRAIN = 10_000  # the reference's num_train for DCI and SAP
MAX_TEST = 5_000  # the reference's num_test for DCI and SAP
SAP_C = 0.01
PRUNE_STD = 0.05  # prune_dims.threshold in the reference's FactorVAE configs


def scores(latents, factors, *, discrete: Sequence[bool] | None = None, n_bins: int = 20, seed: int = 0,
           train_fraction: float = 0.8, mode: str = "reference", dci_max_features: str | None = None,
           n_jobs: int | None = -1) -> dict:
    """MIG, DCI and SAP of ``latents`` (N, D) against ground-truth ``factors`` (N, K).

    ``discrete`` says which factor columns are discrete (default: at most 20 distinct values); continuous ones are
    discretised into ``n_bins`` equal-width bins, as are the latents for MIG. DCI and SAP train on a random
    ``train_fraction`` of the rows (seeded, at most 10,000) and test on the rest (at most 5,000). Factors with a
    single value carry no information and are left out of every score (listed in ``settings["skipped_factors"]``).

    ``mode="reference"`` (default): disentanglement_lib's estimators, DCI with 100 boosting rounds. ``mode="fast"``:
    DCI with 10 rounds, 6-10 times faster but inflated on entangled codes -- not comparable with papers.
    ``dci_max_features`` (e.g. "sqrt") lets DCI's trees look at a random subset of latents per split: faster for
    wide latents, but no longer the reference estimator (disentanglement_lib looks at all). ``n_jobs``: DCI
    classifiers fitted at once, one per factor (joblib processes; -1: all cores).

    Returns {"mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap"} as floats, plus
    "settings": the mode, the estimators, their parameters, the points used and the library versions.
    """
    if mode not in DCI_N_ESTIMATORS:
        raise InvalidParameterError(f"mode must be one of {', '.join(map(repr, DCI_N_ESTIMATORS))}, got {mode!r}")
    if dci_max_features not in (None, "sqrt", "log2"):
        raise InvalidParameterError(f"dci_max_features must be None, 'sqrt' or 'log2', got {dci_max_features!r}")
    latents, factors, discrete = _checked_inputs(latents, factors, discrete, n_bins, train_fraction)
    labels = _factor_labels(factors, discrete, n_bins)
    kept = [j for j in range(labels.shape[1]) if np.unique(labels[:, j]).size > 1]
    if not kept:
        raise InvalidParameterError("every factor column is constant: there is nothing to score against")
    labels = labels[:, kept]
    train, test = _split(len(latents), train_fraction, seed)
    n_estimators = DCI_N_ESTIMATORS[mode]

    mig = _mig(_histogram_discretize(latents, n_bins), labels)
    importance, informativeness = _dci_importance(latents[train], labels[train], latents[test], labels[test], seed,
                                                  dci_max_features, n_estimators, n_jobs)
    sap = _top_two_gap(_sap_matrix(latents[train], labels[train], latents[test], labels[test], seed))

    reference_estimators = mode == "reference" and dci_max_features is None
    settings = {
        "mode": mode, "reference_estimators": reference_estimators,
        "note": MODE_NOTES[mode] if dci_max_features is None else
        f"DCI trees see a random {dci_max_features} subset of the latents at each split (disentanglement_lib: all): "
        "not the reference estimator",
        "reference": "google-research/disentanglement_lib, evaluation/metrics/{mig,dci,sap_score}.py",
        "n_samples": len(latents), "n_latents": latents.shape[1], "n_factors": factors.shape[1],
        "n_bins": n_bins, "discretizer": "histogram: np.digitize into n_bins equal-width bins over each column",
        "discrete_factors": [bool(d) for d in discrete],
        "skipped_factors": [j for j in range(factors.shape[1]) if j not in kept],
        "seed": seed, "train_fraction": train_fraction, "n_train": len(train), "n_test": len(test),
        "max_train": MAX_TRAIN, "max_test": MAX_TEST,
        **({"points_note": f"DCI trained on {len(train):,} points, the reference on up to {MAX_TRAIN:,}: DCI "
                           "disentanglement and completeness come out lower with fewer training points"}
           if len(train) < MAX_TRAIN else {}),
        "mig": {"n_points": len(latents), "mutual_information": "sklearn.metrics.mutual_info_score (nats)",
                "normalisation": "gap of the top two MIs over the factor's entropy; zero-entropy factors skipped"},
        "dci": {"classifier": "sklearn.ensemble.GradientBoostingClassifier, one per factor",
                "n_estimators": n_estimators, "reference_n_estimators": DCI_N_ESTIMATORS["reference"],
                "max_features": dci_max_features or "all latents (as disentanglement_lib)",
                "random_state": seed, "n_jobs": n_jobs,
                "importance": "abs(feature_importances_)", "informativeness": "mean test accuracy over factors"},
        "sap": {"classifier": f"LinearSVC(C={SAP_C}, class_weight='balanced'), one per (latent, factor)",
                "continuous_factors": False, "score": "test accuracy on discretised factors"},
        "versions": _versions(),
        "sklearn_version": sklearn.__version__, "numpy_version": np.__version__,
    }
    return {"mig": mig, "dci_disentanglement": _dci_disentanglement(importance),
            "dci_completeness": _dci_completeness(importance), "dci_informativeness": informativeness,
            "sap": sap, "settings": settings}


def _versions() -> dict:
    """The versions of the libraries a score depends on."""
    return {"latentds": latentds.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "joblib": joblib.__version__}


def _checked_inputs(latents, factors, discrete, n_bins, train_fraction):
    """Validate and return (latents (N, D) float64, factors (N, K) float64, discrete (K,) bool array)."""
    latents = _finite_matrix(latents, "latents")
    factors = _finite_matrix(factors, "factors")
    n = len(latents)
    if len(factors) != n:
        raise InvalidParameterError(f"latents have {n} rows but factors have {len(factors)}: they must match")
    if n < MIN_SAMPLES:
        raise InvalidParameterError(f"only {n} samples: scores need at least {MIN_SAMPLES}")
    if latents.shape[1] < 2:
        raise InvalidParameterError("latents have a single column: MIG and SAP need at least two latents")
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise InvalidParameterError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    if not 0 < train_fraction < 1 or not 1 <= int(n * train_fraction) < n:
        raise InvalidParameterError(f"train_fraction must leave samples on both sides of the split, got "
                                    f"{train_fraction!r} for {n} samples")
    if discrete is None:
        discrete = [np.unique(column).size <= DISCRETE_MAX_VALUES for column in factors.T]
    elif len(discrete) != factors.shape[1]:
        raise InvalidParameterError(f"discrete has {len(discrete)} entries but factors have {factors.shape[1]} "
                                    f"columns")
    return latents, factors, np.asarray(discrete, dtype=bool)


def _finite_matrix(values, name: str) -> np.ndarray:
    """``values`` as a finite (N, C) float64 array with C >= 1, or InvalidParameterError."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidParameterError(f"{name} must be numeric: {error}") from None
    if array.ndim != 2 or array.shape[1] == 0:
        raise InvalidParameterError(f"{name} must be a 2-D array (N, columns), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InvalidParameterError(f"{name} contain NaN or infinite values")
    return array


def _histogram_discretize(target: np.ndarray, n_bins: int) -> np.ndarray:
    """Per column of ``target`` (N, C): bin index 1..n_bins of equal-width bins over the column's range.

    Follows ``_histogram_discretize`` in disentanglement_lib/evaluation/metrics/utils.py.
    """
    discretized = np.zeros(target.shape, dtype=np.int64)
    for i in range(target.shape[1]):
        discretized[:, i] = np.digitize(target[:, i], np.histogram(target[:, i], n_bins)[1][:-1])
    return discretized


def _factor_labels(factors: np.ndarray, discrete: np.ndarray, n_bins: int) -> np.ndarray:
    """Integer class labels (N, K): discrete columns by value, continuous columns by histogram bin."""
    labels = _histogram_discretize(factors, n_bins)
    for j in np.flatnonzero(discrete):
        labels[:, j] = np.unique(factors[:, j], return_inverse=True)[1]
    return labels


def _split(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random (train, test) row indices, capped at MAX_TRAIN and MAX_TEST."""
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(n * train_fraction)
    return order[:min(n_train, MAX_TRAIN)], order[n_train:n_train + MAX_TEST]


def _mig(latent_bins: np.ndarray, labels: np.ndarray) -> float:
    """Mean over factors of (top MI - second MI) / factor entropy, from discrete latents (N, D) and labels (N, K).

    Follows disentanglement_lib/evaluation/metrics/mig.py (``discrete_mutual_info``, ``discrete_entropy`` in
    utils.py). Callers drop constant factors first: their entropy is zero.
    """
    mi = np.array([[mutual_info_score(y, z) for y in labels.T] for z in latent_bins.T])  # (D, K)
    entropy = np.array([mutual_info_score(y, y) for y in labels.T])
    top = np.sort(mi, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / entropy))


def mig_standard_error(latents, factors, *, n_bins: int = 20, rounds: int = 200, seed: int = 0) -> float:
    """Bootstrap standard error of MIG (``scores``' estimator) over the samples: MIG recomputed on ``rounds``
    resamples (with replacement) of the rows, mutual information from the joint histograms (the same nats as
    ``mutual_info_score``)."""
    latents, factors, discrete = _checked_inputs(latents, factors, None, n_bins, 0.8)
    labels = _factor_labels(factors, discrete, n_bins)
    labels = labels[:, [j for j in range(labels.shape[1]) if np.unique(labels[:, j]).size > 1]]
    bins = _histogram_discretize(latents, n_bins)
    codes = [np.unique(c, return_inverse=True)[1] for c in labels.T]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        rows = rng.integers(0, len(bins), len(bins))
        values.append(_mig_histogram(bins[rows], [c[rows] for c in codes]))
    return float(np.std(values, ddof=1))


def _mig_histogram(latent_bins: np.ndarray, labels: list[np.ndarray]) -> float:
    """MIG as ``_mig`` computes it, from joint histograms (fast enough to bootstrap); NaN gaps (a factor that is
    constant in a resample) are left out of the mean."""
    def mutual_information(a, b):
        na, nb = a.max() + 1, b.max() + 1
        joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb) / len(a)
        outer = joint.sum(1, keepdims=True) @ joint.sum(0, keepdims=True)
        nonzero = joint > 0
        return float(np.sum(joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])))

    z = [np.unique(column, return_inverse=True)[1] for column in latent_bins.T]
    gaps = []
    for y in labels:
        entropy = mutual_information(y, y)
        if entropy <= 0:
            continue
        mi = sorted((mutual_information(column, y) for column in z), reverse=True)
        gaps.append((mi[0] - mi[1]) / entropy)
    return float(np.mean(gaps)) if gaps else float("nan")


def _dci_importance(x_train, y_train, x_test, y_test, seed: int, max_features: str | None = None,
                    n_estimators: int = DCI_N_ESTIMATORS["reference"],
                    n_jobs: int | None = -1) -> tuple[np.ndarray, float]:
    """Importance matrix (D, K) of one gradient-boosted classifier per factor, and their mean test accuracy.

    Follows ``compute_importance_gbt`` in disentanglement_lib/evaluation/metrics/dci.py (which fits
    ``GradientBoostingClassifier()``: 100 rounds), with a fixed random_state. The factors are fitted in parallel
    joblib worker processes (threads gave no speed-up here: the per-round Python work holds the GIL).
    """
    def fit(j):
        if np.unique(y_train[:, j]).size < 2:  # a rare class may miss the training split: predict the constant
            return np.zeros(x_train.shape[1]), float(np.mean(y_test[:, j] == y_train[0, j]))
        model = GradientBoostingClassifier(n_estimators=n_estimators, max_features=max_features, random_state=seed)
        model.fit(x_train, y_train[:, j])
        return np.abs(model.feature_importances_), float(np.mean(model.predict(x_test) == y_test[:, j]))

    if y_train.shape[1] == 1:
        n_jobs = 1  # one classifier: fitted here, not in a pool of worker processes started for it
    results = joblib.Parallel(n_jobs=n_jobs, prefer="processes")(
        joblib.delayed(fit)(j) for j in range(y_train.shape[1]))
    importance = np.stack([r[0] for r in results], axis=1)
    return importance, float(np.mean([r[1] for r in results]))


def _dci_disentanglement(importance: np.ndarray) -> float:
    """Importance-weighted mean over latents of 1 - entropy(row, base K). Follows ``disentanglement`` in dci.py."""
    per_code = 1.0 - _entropy(importance.T + 1e-11, base=importance.shape[1])
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    return float(np.sum(per_code * importance.sum(axis=1) / importance.sum()))


def _dci_completeness(importance: np.ndarray) -> float:
    """Importance-weighted mean over factors of 1 - entropy(column, base D). Follows ``completeness`` in dci.py."""
    per_factor = 1.0 - _entropy(importance + 1e-11, base=importance.shape[0])
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    return float(np.sum(per_factor * importance.sum(axis=0) / importance.sum()))


def _entropy(columns: np.ndarray, base: int) -> np.ndarray:
    """scipy.stats.entropy of each column; with a single outcome (base 1) the entropy is 0 rather than 0/0."""
    if base == 1:
        return np.zeros(columns.shape[1])
    return scipy.stats.entropy(columns, base=base)


def _sap_matrix(x_train, y_train, x_test, y_test, seed: int) -> np.ndarray:
    """(D, K) test accuracy of a linear SVM predicting each discretised factor from each single latent.

    Follows ``_compute_score_matrix`` in disentanglement_lib/evaluation/metrics/sap_score.py with
    continuous_factors=False, as in its study config.
    """
    matrix = np.zeros((x_train.shape[1], y_train.shape[1]))
    for j in range(y_train.shape[1]):
        if np.unique(y_train[:, j]).size < 2:  # as in _dci_importance: every latent predicts the constant
            matrix[:, j] = np.mean(y_test[:, j] == y_train[0, j])
            continue
        for i in range(x_train.shape[1]):
            classifier = LinearSVC(C=SAP_C, class_weight="balanced", random_state=seed)
            classifier.fit(x_train[:, i:i + 1], y_train[:, j])
            matrix[i, j] = np.mean(classifier.predict(x_test[:, i:i + 1]) == y_test[:, j])
    return matrix


def _top_two_gap(matrix: np.ndarray) -> float:
    """Mean over columns of the gap between the two largest entries. Follows ``_compute_avg_diff_top_two``."""
    ordered = np.sort(matrix, axis=0)
    return float(np.mean(ordered[-1] - ordered[-2]))


def factor_vae_score(encode: Callable, sample_fixed: Callable, n_factors: int, *, sample_random: Callable,
                     batch_size: int = 64, n_train: int = 10_000, n_eval: int = 5_000, n_variance: int = 10_000,
                     seed: int = 0) -> dict:
    """The FactorVAE disentanglement score (Kim & Mnih 2018) of an encoder.

    ``encode(images) -> (B, D)`` latents; ``sample_fixed(factor_index, batch_size, rng) -> images`` draws a batch
    whose factor ``factor_index`` is fixed at one random value; ``sample_random(n, rng) -> images`` draws ``n``
    images with all factors random; ``rng`` is a numpy Generator seeded from ``seed``. Each vote is the latent
    with the least variance (scaled by its global variance) in one fixed-factor batch; a majority-vote classifier
    maps latents to factors. Latents whose global standard deviation is below PRUNE_STD are left out.

    Returns {"factor_vae_train_accuracy", "factor_vae_eval_accuracy", "factor_vae_eval_accuracy_se",
    "num_active_dims", "settings"}: the standard error is the binomial one of the evaluation votes,
    sqrt(p (1 - p) / n_eval) -- about 0.07 at 50 votes, under 0.01 at the reference's 5,000.
    Follows disentanglement_lib/evaluation/metrics/factor_vae.py (10,000 train / 5,000 eval votes, 10,000 images for
    the variances, batches of 64).
    """
    _check_factor_vae(n_factors, batch_size, n_train, n_eval, n_variance)
    rng = np.random.default_rng(seed)
    variances = _global_variances(encode, sample_random, n_variance, batch_size, rng)
    active = np.flatnonzero(np.sqrt(variances) >= PRUNE_STD)
    settings = {"reference": "google-research/disentanglement_lib, evaluation/metrics/factor_vae.py",
                "batch_size": batch_size, "n_train": n_train, "n_eval": n_eval, "n_variance": n_variance,
                "prune_std_threshold": PRUNE_STD, "n_latents": len(variances), "active_dims": active.tolist(),
                "reference_counts": {"n_train": 10_000, "n_eval": 5_000, "n_variance": 10_000, "batch_size": 64},
                "standard_error": "binomial, sqrt(p (1 - p) / n_eval)",
                "seed": seed, "numpy_version": np.__version__, "versions": _versions()}
    if active.size == 0:
        return {"factor_vae_train_accuracy": 0.0, "factor_vae_eval_accuracy": 0.0,
                "factor_vae_eval_accuracy_se": 0.0, "num_active_dims": 0, "settings": settings}
    train_votes = _votes(encode, sample_fixed, n_factors, batch_size, n_train, rng, variances, active)
    classifier = np.argmax(train_votes, axis=0)  # latent -> the factor it most often singled out
    eval_votes = _votes(encode, sample_fixed, n_factors, batch_size, n_eval, rng, variances, active)
    columns = np.arange(train_votes.shape[1])
    accuracy = float(eval_votes[classifier, columns].sum() / eval_votes.sum())
    return {"factor_vae_train_accuracy": float(train_votes[classifier, columns].sum() / train_votes.sum()),
            "factor_vae_eval_accuracy": accuracy,
            "factor_vae_eval_accuracy_se": float(np.sqrt(accuracy * (1 - accuracy) / n_eval)),
            "num_active_dims": int(active.size), "settings": settings}


def _check_factor_vae(n_factors, batch_size, n_train, n_eval, n_variance) -> None:
    """InvalidParameterError unless every count is a positive integer and batches allow a variance."""
    for name, value, least in (("n_factors", n_factors, 1), ("batch_size", batch_size, 2), ("n_train", n_train, 1),
                               ("n_eval", n_eval, 1), ("n_variance", n_variance, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise InvalidParameterError(f"{name} must be an integer >= {least}, got {value!r}")


def _global_variances(encode, sample_random, n: int, batch_size: int, rng) -> np.ndarray:
    """Per-latent variance (ddof=1) over ``n`` random images, encoded batch by batch to bound memory.

    Follows ``_compute_variances`` in factor_vae.py.
    """
    codes = [_encoded(encode, sample_random(min(batch_size, n - start), rng)) for start in range(0, n, batch_size)]
    return np.var(np.concatenate(codes), axis=0, ddof=1)


def _votes(encode, sample_fixed, n_factors, batch_size, n_points, rng, variances, active) -> np.ndarray:
    """(n_factors, D) vote counts from ``n_points`` fixed-factor batches.

    Follows ``_generate_training_batch`` / ``_generate_training_sample`` in factor_vae.py.
    """
    votes = np.zeros((n_factors, len(variances)), dtype=np.int64)
    for _ in range(n_points):
        factor = int(rng.integers(n_factors))
        local = np.var(_encoded(encode, sample_fixed(factor, batch_size, rng)), axis=0, ddof=1)
        # The reference indexes the full vote matrix with a position among the active dims; map it back.
        votes[factor, active[np.argmin(local[active] / variances[active])]] += 1
    return votes


def _encoded(encode, images) -> np.ndarray:
    """``encode(images)`` as a finite (B, D) float64 array, or InvalidParameterError."""
    codes = np.asarray(encode(images), dtype=np.float64)
    if codes.ndim != 2 or not np.isfinite(codes).all():
        raise InvalidParameterError(f"encode must return finite (batch, D) latents, got shape {codes.shape}")
    return codes
