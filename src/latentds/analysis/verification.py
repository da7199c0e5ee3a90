"""Verification from latents: are two images of the same identity? (the face study's task, ../shared/seeds/002).

Pairs are drawn from the encoded samples (seeded): every identity with two or more images gives same-identity
pairs, and as many different-identity pairs are drawn at random. A pair's score is the cosine similarity of the
two latents. Reported: the ROC AUC (threshold-free; 0.5 is chance) with its bootstrap standard error over the
pairs, and the accuracy at the threshold chosen on one half of the pairs, measured on the other half.
"""

from __future__ import annotations

import numpy as np

MAX_PAIRS = 5000  # same-identity pairs at most (as many different-identity ones)
BOOTSTRAP = 200


def verification_pairs(identities: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pairs (P, 2) of row indices, same (P,) bool): balanced same / different identity pairs."""
    rng = np.random.default_rng(seed)
    by_identity: dict = {}
    for row, identity in enumerate(identities):
        by_identity.setdefault(identity, []).append(row)
    same = [(rows[i], rows[j]) for rows in by_identity.values() for i in range(len(rows)) for j in range(i + 1, len(rows))]
    if not same:
        return np.zeros((0, 2), dtype=int), np.zeros(0, dtype=bool)
    same = np.array(same)[rng.permutation(len(same))[:MAX_PAIRS]]
    different = []
    while len(different) < len(same):
        a, b = rng.integers(0, len(identities), 2)
        if identities[a] != identities[b]:
            different.append((a, b))
    pairs = np.concatenate([same, np.array(different)])
    return pairs, np.concatenate([np.ones(len(same), bool), np.zeros(len(different), bool)])


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC: the probability that a random positive scores above a random negative (ties count half)."""
    from scipy.stats import rankdata  # noqa: PLC0415

    ranks = rankdata(scores)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def verification(latents: np.ndarray, identities: np.ndarray, seed: int = 0) -> dict:
    """{"auc", "auc_se", "accuracy", "accuracy_se", "pairs", "identities", "chance"} (see the module docstring)."""
    pairs, same = verification_pairs(np.asarray(identities), seed)
    if len(pairs) < 4:
        return {"pairs": int(len(pairs)), "identities": int(len(set(identities.tolist()))), "auc": None}
    z = np.asarray(latents, dtype=np.float64)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    scores = np.sum(z[pairs[:, 0]] * z[pairs[:, 1]], axis=1)
    rng = np.random.default_rng(seed)
    resampled = []
    for _ in range(BOOTSTRAP):
        rows = rng.integers(0, len(scores), len(scores))
        if 0 < same[rows].sum() < len(rows):
            resampled.append(auc(scores[rows], same[rows]))
    order = rng.permutation(len(scores))
    fit, test = order[: len(order) // 2], order[len(order) // 2:]
    candidates = np.unique(scores[fit])
    accuracy_fit = [np.mean((scores[fit] >= t) == same[fit]) for t in candidates]
    threshold = candidates[int(np.argmax(accuracy_fit))]
    accuracy = float(np.mean((scores[test] >= threshold) == same[test]))
    return {"auc": auc(scores, same), "auc_se": float(np.std(resampled, ddof=1)) if len(resampled) > 1 else None,
            "accuracy": accuracy, "accuracy_se": float(np.sqrt(accuracy * (1 - accuracy) / len(test))),
            "threshold": float(threshold), "pairs": int(len(pairs)), "identities": int(len(set(identities.tolist()))),
            "chance": 0.5, "score": "cosine similarity of the latents"}
