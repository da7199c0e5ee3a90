"""How much of each ground-truth factor a latent space holds: linear and small-MLP probes from latent to factor.

Continuous factors are regressed (score: R^2 on held-out samples); factors with at most ``max_classes`` values
are classified (score: held-out accuracy). 80/20 split, seeded. Each score carries its sampling error
(``linear_se``, ``mlp_se``): the standard deviation of the score over BOOTSTRAP resamples of the held-out samples.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import StandardScaler

BOOTSTRAP = 200  # resamples of the held-out predictions for a score's standard error


def factor_probes(latents: np.ndarray, factors: np.ndarray, names: list[str], *, max_classes: int = 10,
                  max_samples: int = 5000, seed: int = 0) -> dict:
    """{factor: {"kind": "r2" | "accuracy", "linear": score, "mlp": score, "chance": score of a constant guess}}.

    Uses at most ``max_samples`` samples (a seeded subset), and MLPs with early stopping: one probe per factor
    of a 30-factor render stays in seconds.
    """
    if len(latents) > max_samples:
        keep = np.random.default_rng(seed).choice(len(latents), max_samples, replace=False)
        latents, factors = latents[keep], factors[keep]
    x = StandardScaler().fit_transform(latents.astype(np.float64))
    results = {}
    for j, name in enumerate(names):
        y = factors[:, j]
        discrete = len(np.unique(y)) <= max_classes and bool(np.all(y == np.round(y)))  # counts, not few floats
        stratify = y if discrete and min(np.unique(y, return_counts=True)[1]) >= 2 else None
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=stratify)
        if discrete:
            linear = LogisticRegression(max_iter=1000)
            mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=200, early_stopping=True, random_state=seed)
            values, counts = np.unique(y_tr, return_counts=True)
            chance = float(np.mean(y_te == values[np.argmax(counts)]))
        else:
            linear = Ridge(alpha=1.0)
            mlp = MLPRegressor(hidden_layer_sizes=(64,), max_iter=200, early_stopping=True, random_state=seed)
            y_tr, y_te = (y_tr - y_tr.mean()) / (y_tr.std() or 1.0), (y_te - y_tr.mean()) / (y_tr.std() or 1.0)
            chance = 0.0
        scores = {}
        for label, model in (("linear", linear), ("mlp", mlp)):
            model.fit(x_tr, y_tr)
            predicted = model.predict(x_te)
            scores[label] = float(model.score(x_te, y_te))
            scores[f"{label}_se"] = bootstrap_se(y_te, predicted, accuracy_score if discrete else r2_score, seed)
        results[name] = {"kind": "accuracy" if discrete else "r2", **scores, "chance": chance}
    return results


def bootstrap_se(truth: np.ndarray, predicted: np.ndarray, score, seed: int = 0) -> float:
    """Standard deviation of ``score(truth, predicted)`` over BOOTSTRAP resamples of the pairs (seeded)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(BOOTSTRAP):
        rows = rng.integers(0, len(truth), len(truth))
        if np.unique(truth[rows]).size > 1:
            values.append(score(truth[rows], predicted[rows]))
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
