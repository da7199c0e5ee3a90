"""What the encoded data says about each sample, by name: factor values, the factors that vary, the class label.

Factor columns are named by ``Codes.factor_names`` (the factor table of the shard set that was encoded), never by
a fixed list, so the same code serves rendered cuboids and any set whose manifest describes its factor vector.
Labels are the per-sample JSON labels (``Codes.labels``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from latentds.analysis.registry import NEEDS, Skip
from latentds.errors import InvalidParameterError

if TYPE_CHECKING:
    from latentds.analysis.encode import Codes

# Labels the partition probe's classifier predicts, in order of preference (see class_label).
CLASS_LABELS = ("identity", "class_name", "label", "n_cuboids", "race", "gender")
COLOUR_PREFIXES = ("color_", "light_color_")  # colour channels: three columns per colour
CONSTANT_TOLERANCE = 1e-4  # a factor whose std is at most this fraction of its scale is constant (is_constant)
CONSTANT_REASON = (f"constant in this data (standard deviation at most {CONSTANT_TOLERANCE:g} of its scale): left "
                   "out of every probe, since a correlation or score against a constant is undefined")


def values_of(codes: Codes, name: str) -> np.ndarray:
    """Per-sample values of a factor (a column of ``codes.factors``; NaN where absent) or a top-level label
    (strings if not numeric)."""
    names = codes.factor_names or []
    if codes.factors is not None and name in names:
        j = names.index(name)
        return np.where(codes.factor_mask[:, j], codes.factors[:, j], np.nan)
    values = [labels.get(name) for labels in codes.labels]
    if all(v is None for v in values):
        known = ", ".join(sorted(codes.labels[0])) if codes.labels else "none"
        factors = f"; factors: {', '.join(names)}" if names else ""
        raise InvalidParameterError(f"no factor or label {name!r} in this data; labels: {known}{factors}")
    try:
        return np.array([np.nan if v is None else float(v) for v in values])
    except (TypeError, ValueError):
        return np.array([str(v) for v in values])


def is_constant(values: np.ndarray) -> bool:
    """Whether ``values`` (one factor's) are constant for analysis: their standard deviation, taken in float64, at
    most CONSTANT_TOLERANCE of their scale (max(1, largest magnitude)). A constant stored as float32 is not
    exactly constant once averaged (a std of 1e-7 to 1e-5, not 0): correlations with it are noise or NaN."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2 or not np.isfinite(values).all():
        return values.size < 2
    return float(values.std()) <= CONSTANT_TOLERANCE * max(1.0, float(np.abs(values).max()))


def constant_factors(codes: Codes) -> list[str]:
    """The factors every sample has whose values are constant (is_constant): every probe leaves them out."""
    if codes.factors is None:
        return []
    return [name for j, name in enumerate(codes.factor_names or [])
            if codes.factor_mask[:, j].all() and is_constant(codes.factors[:, j])]


def varying_factors(codes: Codes, *, scalar_only: bool = False) -> tuple[np.ndarray, list[str]]:
    """The factor columns every sample has and that vary (not is_constant), and their names; ``scalar_only``
    leaves out the colour channels (when anything else is left). Skip when there are none."""
    if codes.factors is None:
        raise Skip(NEEDS["factors"].reason)
    keep = codes.factor_mask.all(axis=0) & ~np.array([is_constant(column) for column in codes.factors.T], bool)
    if not keep.any():
        raise Skip("no factor varies in every sample of this data")
    factors, names = codes.factors[:, keep], [name for name, k in zip(codes.factor_names, keep) if k]
    if scalar_only:
        scalar = [j for j, name in enumerate(names) if not name.startswith(COLOUR_PREFIXES)]
        if scalar:
            factors, names = factors[:, scalar], [names[j] for j in scalar]
    return factors, names


def score_factors(codes: Codes) -> tuple[np.ndarray, list[str]]:
    """The one factor set every disentanglement score (MIG, DCI, SAP, FactorVAE) reads: the scalar factors every
    sample has and that vary; on cuboid renders, of those the continuous ones (angles and light), which the
    FactorVAE score can fix (discrete counts such as n_cuboids are left out of all four, so the scores compare)."""
    factors, names = varying_factors(codes, scalar_only=True)
    if codes.labels and "preset" in codes.labels[0]:
        from latentds.render.factors import SEQUENCE_FACTORS  # noqa: PLC0415

        keep = [j for j, name in enumerate(names) if name in SEQUENCE_FACTORS]
        if keep:
            factors, names = factors[:, keep], [names[j] for j in keep]
    return factors, names


def most_spread(factors: np.ndarray) -> int:
    """The column whose spread is largest relative to its mean magnitude (the default colour and arithmetic
    factor)."""
    return int(np.argmax(factors.std(axis=0) / (np.abs(factors).mean(axis=0) + 1e-9)))


def class_label(codes: Codes) -> tuple[str, np.ndarray] | None:
    """The label the partition probe's classifier predicts: identity when the data has one (Sprites' 672,
    --identities K), else the first of CLASS_LABELS every sample has, with 2 to 50 classes. None if none fits."""
    for name in CLASS_LABELS:
        values = [labels.get(name) for labels in codes.labels]
        classes = len(set(map(str, values)))
        if None not in values and 2 <= classes and (classes <= 50 or name == "identity"):
            return name, np.array([str(v) for v in values])
    return None
