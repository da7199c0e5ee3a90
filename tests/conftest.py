"""Shared fixtures: one in-process renderer, and small renders built once per session."""

from __future__ import annotations

import pytest

from latentds.render import RenderSpec, render_shards
from latentds.render.factors import CUBOID


@pytest.fixture(scope="session")
def renderer():
    from latentds.render.renderer import process_renderer

    return process_renderer(32, CUBOID)


@pytest.fixture
def read_only(tmp_path):
    """A directory nobody can create files in: a 0o555 directory, or, where permissions do not bind (root), /sys,
    which refuses new files even to root."""
    from pathlib import Path

    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o555)
    try:
        for candidate in (directory, Path("/sys")):
            try:
                (candidate / "latentds-probe").write_bytes(b"")
            except OSError:
                yield candidate
                return
            (candidate / "latentds-probe").unlink()
        pytest.fail("no read-only location on this machine (neither a 0o555 directory nor /sys refuses new files)")
    finally:
        directory.chmod(0o755)


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


# Slow tests (they start processes: renders, torchrun, Ray, kills and signals; train several families; run whole
# studies) carry an explicit mark: `@pytest.mark.slow` on the function, or `pytestmark = pytest.mark.slow` for a
# whole module (test_studies.py, test_reference_scores.py). `pytest -m "not slow"` skips them for a quick loop;
# CI and README's test command run everything.
