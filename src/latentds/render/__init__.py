"""Render articulated cuboid chains into labelled WebDataset shards.

    from latentds.render import RenderSpec, render_shards
    report = render_shards(RenderSpec("varied", n=1000, size=64), "data/varied")
    print(report.summary())

Importing this package does not import pyrender or OpenGL; the renderer does, on first use.
"""

from latentds.render.factors import FACTORS, PRESETS, sample_labels
from latentds.render.job import RenderReport, render_shards
from latentds.render.manifest import describe, read_manifest, verify_shards
from latentds.render.spec import RenderSpec

__all__ = ["FACTORS", "PRESETS", "RenderReport", "RenderSpec", "describe", "read_manifest", "render_shards",
           "sample_labels", "verify_shards"]
