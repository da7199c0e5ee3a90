"""The selection language of ``--groups`` (and the names ``--colour-by`` takes): boolean masks over the samples
from ``ids:KEY,KEY,...``, ``NAME=VALUE``, ``NAME>NUMBER`` or ``NAME<NUMBER``, NAME a factor of the encoded data
(``Codes.factor_names``) or a label. The values behind a name are latentds.analysis.labels.values_of."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from latentds.analysis.labels import values_of
from latentds.errors import InvalidParameterError

if TYPE_CHECKING:
    from latentds.analysis.encode import Codes

__all__ = ["select", "values_of"]


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
