"""Shared fixtures: one in-process renderer, and small renders built once per session."""

from __future__ import annotations

import pytest

from latentds.render import RenderSpec, render_shards
from latentds.render.factors import CUBOID


@pytest.fixture(scope="session")
def renderer():
    from latentds.render.renderer import process_renderer

    return process_renderer(32, CUBOID)


@pytest.fixture(scope="session")
def phi_set(tmp_path_factory):
    """A tiny finished phi render (40 images of 16 px in 4 shards), rendered in this process."""
    spec = RenderSpec("phi", n=40, size=16, shard_size=10)
    out = tmp_path_factory.mktemp("phi")
    render_shards(spec, out, workers=1, progress=False)
    return spec, out


def tree_bytes(directory) -> dict[str, bytes]:
    """Every non-hidden file of a directory, name -> bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if not p.name.startswith(".")}
