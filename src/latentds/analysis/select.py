"""The selection language of ``--groups`` and ``--colour-by``: per-sample values of a factor or label, and boolean
masks over the samples from ``ids:KEY,KEY,...``, ``NAME=VALUE``, ``NAME>NUMBER`` or ``NAME<NUMBER``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from latentds.errors import InvalidParameterError

if TYPE_CHECKING:
    from latentds.analysis.encode import Codes


def values_of(codes: Codes, name: str) -> np.ndarray:
    """Per-sample values of a factor (FACTOR_NAMES; NaN where absent) or a top-level label (strings if not
    numeric)."""
    from latentds.datasets.cuboids import FACTOR_NAMES  # noqa: PLC0415

    if codes.factors is not None and name in FACTOR_NAMES:
        j = FACTOR_NAMES.index(name)
        return np.where(codes.factor_mask[:, j], codes.factors[:, j], np.nan)
    values = [labels.get(name) for labels in codes.labels]
    if all(v is None for v in values):
        known = ", ".join(sorted(codes.labels[0])) if codes.labels else "none"
        raise InvalidParameterError(f"no factor or label {name!r} in this data; labels: {known}")
    try:
        return np.array([np.nan if v is None else float(v) for v in values])
    except (TypeError, ValueError):
        return np.array([str(v) for v in values])


def select(codes: Codes, expression: str) -> np.ndarray:
    """A boolean mask over the samples: ``ids:KEY,KEY,...``, ``NAME=VALUE``, ``NAME>NUMBER`` or ``NAME<NUMBER``
    (NAME a factor or a label)."""
    if expression.startswith("ids:"):
        wanted = set(expression[4:].split(","))
        return np.array([key in wanted for key in codes.keys])
    for op in ("=", ">", "<"):
        name, found, value = expression.partition(op)
        if found:
            values = values_of(codes, name.strip())
            if op == "=":
                try:
                    return values.astype(float) == float(value)
                except ValueError:
                    return values.astype(str) == value.strip()
            with np.errstate(invalid="ignore"):
                return values > float(value) if op == ">" else values < float(value)
    raise InvalidParameterError(f"cannot read group {expression!r}: write ids:KEY,..., NAME=VALUE, NAME>N or NAME<N")

