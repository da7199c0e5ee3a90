"""The names of a cuboid render's factor vector, for code that names cuboid factors without a shard set at hand.

A stream builds its factor vector from the shard set's own manifest (latentds.datasets.factors; the names are
``[r["name"] for r in load_shards(...).factor_table]``). ``FACTOR_NAMES`` is that list for any cuboid render: the
render's factor table (latentds.render.factors.FACTORS) expanded the same way, colours into ``_r``/``_g``/``_b``.
Nothing else in latentds.datasets imports the renderer's modules.

Shards streamed without their manifest (a ``pipe:`` or ``https://`` URL) have no table to read; a sample whose
labels are a cuboid render's (``is_cuboid_labels``) then gets the render's vector (``cuboid_vector()``), as it
would from the manifest the render wrote.
"""

from __future__ import annotations

from functools import cache

from latentds.datasets.factors import FactorVector, expand_table
from latentds.render.factors import FACTORS

CUBOID_TABLE: list[dict] = [f.as_json(True) for f in FACTORS]  # the "factors" of every cuboid render's manifest
FACTOR_NAMES: tuple[str, ...] = tuple(row["name"] for row in expand_table({"factors": CUBOID_TABLE}))


def is_cuboid_labels(labels: dict) -> bool:
    """Whether ``labels`` are a cuboid render's sample labels (latentds.render.factors.sample_labels)."""
    return "joints" in labels and "n_cuboids" in labels and "light" in labels


@cache
def cuboid_vector() -> FactorVector:
    """The factor vector of a cuboid render, compiled once per process."""
    return FactorVector(CUBOID_TABLE)
