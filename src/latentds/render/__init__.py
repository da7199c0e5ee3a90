"""Render articulated cuboid chains into labelled WebDataset shards.

    from latentds.render import RenderSpec, render_shards
    report = render_shards(RenderSpec("varied", n=1000, size=64), "data/varied")
    print(report.summary())

Names are imported on first use, so ``import latentds.render.manifest`` (as ``latentds info`` does) stays light;
pyrender and OpenGL are imported only when a renderer is created.
"""

import importlib

_EXPORTS = {
    "FACTORS": "factors", "PRESETS": "factors", "sample_labels": "factors",
    "render_shards": "job",
    "describe": "manifest", "read_manifest": "manifest", "verify_shards": "manifest",  # from latentds.shardsets
    "RenderSpec": "spec",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module = _EXPORTS[name]
        package = "latentds.shardsets" if module == "manifest" else "latentds.render"
        return getattr(importlib.import_module(f"{package}.{module}"), name)
    raise AttributeError(f"module 'latentds.render' has no attribute {name!r}")
