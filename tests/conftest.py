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


# Tests that start processes (renders, torchrun, Ray, kills and signals), train several families, or run whole
# studies: `pytest -m "not slow"` skips them for a quick loop; CI and README's test command run everything.
SLOW_MODULES = ("test_studies.py", "test_reference_scores.py")
SLOW_NAMES = ("ddp", "ray", "killed", "sigterm", "interrupted", "dead_worker", "same_bytes", "partition",
              "classifier_probe", "analyze_runs_on_a_trained_model", "a_few_steps_of_training", "resume_continues",
              "held_out_loss", "fresh_processes", "rendering_then_training", "workers_die", "flipped", "fuzz",
              "no_headless_gl", "labeller", "umap", "second_render", "lock", "seeds", "e2e_cnn_predicts")


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.name.lower()
        if item.path.name in SLOW_MODULES or any(part in name for part in SLOW_NAMES):
            item.add_marker(pytest.mark.slow)
