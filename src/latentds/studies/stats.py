"""The statistics behind every study verdict: intervals that hold the seed-to-seed spread and each probe's own
sampling error, paired comparisons, effects of a design's factors, rank correlations with a permutation p-value.

A measured value of one run and seed is ``(value, se)``: ``se`` is the probe's own standard error (a bootstrap or
binomial error recorded beside the value; None where the probe has none). Over the seeds of a run:

    mean   = mean of the seeds' values
    se     = sqrt(sd_seeds^2 / n + mean(se_s^2) / n)          (seed spread + the probes' sampling error)
    CI95   = mean +- t(0.975, n - 1) * se                      (n = 1: +- 1.96 * se_probe; "indicative")

A comparison "left OP right" is paired by seed where both sides were measured on the same seeds (the same run,
or two runs trained with the same seed numbers): d_s = left_s - right_s, se = sqrt(sd(d)^2 / n +
sum(se_left_s^2 + se_right_s^2) / n^2), df = n - 1; otherwise unpaired (se = sqrt(se_left^2 + se_right^2),
df = min(n_left, n_right) - 1). The difference ``d`` is oriented so that d > 0 means the claim holds. Outcome:
"holds" when the whole 95% interval of d lies above ``threshold`` (``min_effect`` of |right|), "fails" when it lies
below -threshold, else "within noise". A verdict needs MIN_SEEDS seeds on every side; with fewer it is
"indicative (n seed)". Numpy and scipy only.
"""

from __future__ import annotations

import itertools
import math
import statistics

MIN_SEEDS = 3  # seeds a verdict needs ("confirmed" / "contradicted"); fewer: "indicative"
Z95 = 1.959963984540054


def t95(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom (the normal's for df < 1)."""
    if df < 1:
        return Z95
    from scipy.stats import t  # noqa: PLC0415

    return float(t.ppf(0.975, df))


def summary(measured: dict) -> dict | None:
    """{seed: (value, se)} -> mean, seed sd, probe se, combined se, 95% interval, n, values (None if empty)."""
    pairs = {s: v for s, v in measured.items() if v is not None and v[0] is not None and math.isfinite(v[0])}
    if not pairs:
        return None
    values = [v for v, _ in pairs.values()]
    n = len(values)
    seed_sd = statistics.stdev(values) if n > 1 else 0.0
    probe = [se for _, se in pairs.values() if se is not None and math.isfinite(se)]
    probe_se = math.sqrt(sum(se * se for se in probe) / len(probe) / n) if probe else None
    se = math.sqrt(seed_sd ** 2 / n + (probe_se or 0.0) ** 2)
    mean = statistics.fmean(values)
    half = (t95(n - 1) if n > 1 else Z95) * se
    return {"mean": mean, "std": seed_sd, "probe_se": probe_se, "se": se, "ci": [mean - half, mean + half], "n": n,
            "seeds": sorted(pairs), "values": values}


def compare(left: dict, right: dict, op: str, min_effect: float) -> dict:
    """Compare two per-seed measurements ({seed: (value, se)}) for the claim ``left op right``; see the module
    docstring. Returns the difference d (> 0: the claim holds), its 95% interval, how it was paired, the
    threshold and the outcome ("holds", "fails", "within noise")."""
    left = {s: v for s, v in left.items() if v is not None and v[0] is not None and math.isfinite(v[0])}
    right = {s: v for s, v in right.items() if v is not None and v[0] is not None and math.isfinite(v[0])}
    sign = 1.0 if op == ">" else -1.0
    shared = sorted(set(left) & set(right))
    a, b = summary(left), summary(right)
    constant = all(se is None for _, se in right.values()) and len({v for v, _ in right.values()}) == 1
    if constant and set(left) <= set(right):  # a fixed number on the right: the left-hand interval decides
        diff, se = sign * (a["mean"] - b["mean"]), a["se"]
        df, paired = a["n"] - 1, True
    elif len(shared) >= 2 and len(shared) == len(left) == len(right):
        d = [sign * (left[s][0] - right[s][0]) for s in shared]
        n = len(d)
        probe = sum((left[s][1] or 0.0) ** 2 + (right[s][1] or 0.0) ** 2 for s in shared) / n ** 2
        se = math.sqrt(statistics.variance(d) / n + probe)
        diff, df, paired = statistics.fmean(d), n - 1, True
    else:
        diff = sign * (a["mean"] - b["mean"])
        se = math.sqrt(a["se"] ** 2 + b["se"] ** 2)
        df, paired = min(a["n"], b["n"]) - 1, False
    half = (t95(df) if df >= 1 else Z95) * se
    threshold = min_effect * abs(b["mean"])
    lo, hi = diff - half, diff + half
    outcome = "holds" if lo > threshold else "fails" if hi < -threshold else "within noise"
    return {"difference": diff, "ci": [lo, hi], "se": se, "paired": paired, "threshold": threshold,
            "outcome": outcome, "left": a, "right": b, "seeds": min(a["n"], b["n"])}


def verdict(outcomes: list[str], seeds: int) -> str:
    """The finding's verdict from its comparisons' outcomes and the fewest seeds any of them had."""
    if not outcomes:
        return "not measured"
    kinds = set(outcomes)
    word = ("holds" if kinds == {"holds"} else "fails" if kinds == {"fails"} else "within noise"
            if kinds == {"within noise"} else "mixed")
    if seeds < MIN_SEEDS:
        return f"indicative ({seeds} seed{'s' if seeds != 1 else ''}): {word}"
    return {"holds": "confirmed", "fails": "contradicted", "within noise": "no measurable difference",
            "mixed": "mixed"}[word]


def spearman_permutation(x: list[float], y: list[float], *, rounds: int = 20_000, seed: int = 0) -> dict:
    """Spearman's rho of x and y with its one-sided permutation p-value (P[rho' >= rho] under random order):
    exact over all orders for n <= 8, else ``rounds`` seeded random orders."""
    import numpy as np  # noqa: PLC0415
    from scipy.stats import rankdata  # noqa: PLC0415

    rx, ry = rankdata(x), rankdata(y)
    n = len(rx)
    if rx.std() == 0 or ry.std() == 0:
        return {"spearman": float("nan"), "p_value": 1.0, "n": n, "exact": n <= 8}
    zx, zy = (rx - rx.mean()) / rx.std(), (ry - ry.mean()) / ry.std()  # Pearson's r of the ranks: rho
    observed = float(zx @ zy / n)
    if n <= 8:
        orders = np.array(list(itertools.permutations(range(n))))
    else:
        rng = np.random.default_rng(seed)
        orders = np.array([rng.permutation(n) for _ in range(rounds)])
    values = zy[orders] @ zx / n
    p = float(np.mean(values >= observed - 1e-12))
    return {"spearman": observed, "p_value": p, "n": n, "exact": n <= 8}


def effects(cells: dict, levels_of: str) -> list[dict]:
    """Main effects of one factor of a two-factor design. ``cells``: {(row, column): {seed: (value, se)}};
    ``levels_of`` "columns" or "rows". Each level of that factor is compared with the mean over its levels,
    paired by (other factor's level, seed): the differences' mean and 95% interval (t over the pairs)."""
    index = 1 if levels_of == "columns" else 0
    levels = sorted({key[index] for key in cells})
    others = sorted({key[1 - index] for key in cells})
    result = []
    for level in levels:
        diffs, probe = [], []
        for other in others:
            key = (other, level) if index == 1 else (level, other)
            here = cells.get(key, {})
            for seed, (value, se) in here.items():
                across = [cells.get((other, lv) if index == 1 else (lv, other), {}).get(seed) for lv in levels]
                if value is None or any(a is None or a[0] is None for a in across):
                    continue
                diffs.append(value - statistics.fmean(a[0] for a in across))
                probe.append(se or 0.0)
        if len(diffs) < 2:
            result.append({"level": level, "effect": diffs[0] if diffs else None, "ci": None, "n": len(diffs)})
            continue
        m = len(diffs)
        se = math.sqrt(statistics.variance(diffs) / m + sum(p * p for p in probe) / m ** 2)
        mean = statistics.fmean(diffs)
        half = t95(m - 1) * se
        result.append({"level": level, "effect": mean, "ci": [mean - half, mean + half], "n": m})
    return result
