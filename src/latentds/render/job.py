"""``render_shards``: a RenderSpec -> a finished, verified-on-resume shard set (see latentds.shardsets)."""

from __future__ import annotations

import os

from latentds.render import gl
from latentds.render.shard_writer import write_shard
from latentds.render.spec import RenderSpec
from latentds.shardsets.producer import ShardReport, produce_shards


def render_shards(spec: RenderSpec, out: str | os.PathLike, *, workers: int | None = None, overwrite: bool = False,
                  engine: str = "local", progress: bool = True) -> ShardReport:
    """Render ``spec`` into WebDataset shards in directory ``out`` (resuming an interrupted render there).

    ``workers``: local processes (default: all cores), each with one persistent renderer. ``engine="ray"`` runs
    one task per shard on the Ray cluster that ``ray.init()`` joins (``out`` must be on storage every node can
    write). Returns a ShardReport; the manifest is also written to ``out/manifest.json``.
    """
    if engine == "local":
        # Fail here, once, clearly and before touching --out, rather than in every worker; workers inherit the
        # choice instead of probing again.
        os.environ[gl.CHOSEN_ENV] = gl.headless_platform()
    return produce_shards(spec, out, write_shard, workers=workers, overwrite=overwrite, engine=engine,
                          progress=progress, verb="rendered")
