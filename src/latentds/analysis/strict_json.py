"""metrics.json is strict JSON: NaN and infinities (an undefined correlation, a score with nothing to score) are
written as null, and a note lists where. Python's ``json`` writes bare ``NaN``, which JavaScript's
``JSON.parse`` and strict parsers reject."""

from __future__ import annotations

import json
import math

NOTE = "values that were not finite numbers (NaN: undefined, or an infinity) are written as null; see non_finite"


def finite(value, path: str = "", found: list[str] | None = None):
    """``value`` with every non-finite float (also numpy's) replaced by None; ``found`` collects their dotted
    paths."""
    if isinstance(value, dict):
        return {k: finite(v, f"{path}.{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return value
        if not math.isfinite(number):
            if found is not None:
                found.append(path)
            return None
    return value


def dumps(metrics: dict, default=None) -> str:
    """metrics.json's text: strict JSON (``allow_nan=False`` holds), with "notes" and "non_finite" (the paths of
    the values written as null) when any value was not finite."""
    def plain(value):  # numpy scalars and arrays as Python numbers and lists; anything else as ``default`` says
        if hasattr(value, "tolist"):
            return value.tolist()
        return default(value) if default is not None else str(value)

    found: list[str] = []
    clean = finite(json.loads(json.dumps(metrics, default=plain)), found=found)
    if found:
        clean["notes"] = list(clean.get("notes", [])) + [NOTE]
        clean["non_finite"] = found
    return json.dumps(clean, indent=1, allow_nan=False) + "\n"
