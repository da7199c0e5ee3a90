"""Warnings that libraries (numpy, scikit-learn, torch, umap) raise inside a probe go into the report, not onto
the terminal: ``library_warnings()`` records them; latentds' own warnings (a ShardWarning about damaged data)
still reach the user as they are."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def library_warnings() -> Iterator[list[str]]:
    """Inside the block, warnings that the active filters would show are recorded instead; on exit the list holds
    each distinct library warning once as "Category: message (file:line)", and latentds' own are re-issued."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        yield found
    for w in caught:
        if w.category.__module__.startswith("latentds"):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        line = f"{w.category.__name__}: {str(w.message).strip().splitlines()[0] if str(w.message).strip() else ''}"
        line += f" ({w.filename.rsplit('/site-packages/', 1)[-1]}:{w.lineno})"
        if line not in found:
            found.append(line)
