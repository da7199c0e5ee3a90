"""Shared fixtures: one in-process renderer, and small renders built once per session; the session's time, printed
at its end."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

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


def _render(tmp_path_factory, name: str, spec: RenderSpec):
    out = tmp_path_factory.mktemp(name)
    render_shards(spec, out, workers=1, progress=False)
    return out


# The standard tiny renders, made once per session and shared by every module that trains or streams them. Tests
# never write into them (a test that damages data copies the set first).
@pytest.fixture(scope="session")
def varied96(tmp_path_factory):
    """96 varied images of 16 px in 3 shards of 32 (seed 3): the tiny training set of the zoo tests."""
    return _render(tmp_path_factory, "varied96", RenderSpec("varied", n=96, size=16, shard_size=32, seed=3))


@pytest.fixture(scope="session")
def varied96_identities(tmp_path_factory):
    """96 varied images of 16 px of 6 identities (seed 4), in shards of 32: pair batches."""
    return _render(tmp_path_factory, "varied96-ids",
                   RenderSpec("varied", n=96, size=16, shard_size=32, seed=4, identities=6))


@pytest.fixture(scope="session")
def varied96_sequences(tmp_path_factory):
    """96 varied images of 16 px sweeping phi_0 and theta_0 in groups of 4 steps (seed 5): group batches."""
    return _render(tmp_path_factory, "varied96-seq",
                   RenderSpec("varied", n=96, size=16, shard_size=32, seed=5, sequence="phi_0,theta_0", steps=4))


@pytest.fixture(scope="session")
def varied48(tmp_path_factory):
    """48 varied images of 16 px in 3 shards of 16 (seed 3): the data of the stop and robustness tests."""
    return _render(tmp_path_factory, "varied48", RenderSpec("varied", n=48, size=16, shard_size=16, seed=3))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A saved, untrained tiny model of every family (tiny.py's configuration, torch seed 0), {family: directory}:
    load it (from_pretrained) or point a command at it; a test that alters a model copies it first."""
    import torch

    from latentds.zoo.base import create, families
    from tiny import TINY

    base = tmp_path_factory.mktemp("tiny-models")
    saved = {}
    for family in families():
        torch.manual_seed(0)
        create(family, **TINY[family]).save_pretrained(base / family)
        saved[family] = base / family
    return saved


def tree_bytes(directory) -> dict[str, bytes]:
    """Every non-hidden file of a directory, name -> bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if not p.name.startswith(".")}


# Slow tests (they start processes: renders, torchrun, Ray, kills and signals; train models; run analyses with FID
# or every probe, or whole studies; or otherwise cost over half a second of CPU, measured per test, first use of a
# shared fixture aside) carry an explicit mark: `@pytest.mark.slow` on the function, or
# `pytestmark = pytest.mark.slow` for a whole module (test_studies.py, test_reference_scores.py).
# `pytest -m "not slow"` skips them for a quick loop (its CPU time is printed at its end); CI and README's test
# command run everything.


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its children, as /usr/bin/time counts it at exit: the finished
    ones (getrusage) and the live ones, such as joblib's worker pool, read from /proc (with what they reaped)."""
    own, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    tick, me = os.sysconf("SC_CLK_TCK"), os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the name: state, ppid, ..., utime (12th)
        except OSError:
            continue
        if int(fields[1]) == me:
            total += sum(int(f) for f in fields[11:15]) / tick  # utime, stime, cutime, cstime
    return total


_STARTED = time.monotonic()  # this file is imported as the session starts, before any test module


def pytest_terminal_summary(terminalreporter):
    """Print the session's measured time (so no document has to state how long the tests take): wall time since
    pytest loaded this file, CPU time since the process started, imports and collection included."""
    terminalreporter.write_line(f"session time: {time.monotonic() - _STARTED:.1f} s wall, {_cpu_seconds():.1f} s CPU "
                                "(user + sys, this process and its children)")
