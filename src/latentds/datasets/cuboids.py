"""The names of a cuboid render's factor vector, for code that names cuboid factors without a shard set at hand.

A stream builds its factor vector from the shard set's own manifest, and only from it (latentds.datasets.factors;
the names are ``[r["name"] for r in load_shards(...).factor_table]``; shards streamed without their manifest have
none). ``FACTOR_NAMES`` is that list for any cuboid render: the render's factor table
(latentds.render.factors.FACTORS) expanded the same way, colours into ``_r``/``_g``/``_b``. It names the factors a
model may be configured with (e2e_cnn's regression targets); the columns a model reads are always bound to the
data's own table when training starts. Nothing else in latentds.datasets imports the renderer's modules.
"""

from __future__ import annotations

from latentds.datasets.factors import expand_table
from latentds.render.factors import FACTORS

CUBOID_TABLE: list[dict] = [f.as_json(True) for f in FACTORS]  # the "factors" of every cuboid render's manifest
FACTOR_NAMES: tuple[str, ...] = tuple(row["name"] for row in expand_table({"factors": CUBOID_TABLE}))
