"""A full disk during ``analyze`` (issue 21): one line, no traceback, no temporary file left behind, nothing
half-written left looking complete. Simulated (an injected ENOSPC) everywhere, and for real on a 64 KiB tmpfs
where this machine lets the test mount one (root)."""

import errno
import os
import subprocess

import pytest
import torch
from click.testing import CliRunner

from hostile import build_set, within
from latentds.analysis import runner
from latentds.analysis.encode import LABELS, LATENTS
from latentds.analysis.probes import run
from latentds.cli import main
from latentds.errors import OutputDirectoryError
from latentds.zoo.base import create


def tiny_model():
    torch.manual_seed(0)
    return create("vae", image_size=16, width=8, latent_dim=4).eval()


def leftovers(out):
    return sorted(p.name for p in out.rglob("*") if p.name.endswith(".partial"))


def test_safetensors_failing_on_a_full_disk_is_one_line_and_leaves_no_partial_files(tmp_path, monkeypatch):
    import safetensors.numpy
    from safetensors import SafetensorError

    data = tmp_path / "s"
    build_set(data)

    def full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 100)  # what it managed to write
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                              '"No space left on device" })')

    monkeypatch.setattr(safetensors.numpy, "save_file", full)
    out = tmp_path / "out"
    with within(120), pytest.raises(OutputDirectoryError, match="the disk is full"):
        run(tiny_model(), data, out, probes=[], n=16, progress=False)
    assert leftovers(out) == [] and not (out / LATENTS).exists() and not (out / LABELS).exists()


def test_an_injected_enospc_writing_metrics_is_one_line_on_the_cli(tmp_path, monkeypatch):
    data = tmp_path / "s"
    build_set(data)
    model_dir = tmp_path / "model"
    tiny_model().save_pretrained(model_dir)
    real = runner.write_atomic

    def full(path, data, **kwargs):
        if path.name == "metrics.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data, **kwargs)

    monkeypatch.setattr(runner, "write_atomic", full)
    out = tmp_path / "out"
    with within(120):
        result = CliRunner().invoke(main, ["analyze", str(model_dir), "--data", str(data), "--out", str(out),
                                           "--probes", "pca", "--n", "16", "--quiet"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "the disk is full" in result.stderr and leftovers(out) == [] and not (out / "metrics.json").exists()


@pytest.fixture
def tiny_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True, timeout=10,
                       capture_output=True)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot mount a tmpfs here (needs root); the simulated tests cover the same code")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], timeout=10, capture_output=True)


def test_a_really_full_disk_during_analyze_is_one_line(tmp_path, tiny_disk):
    data = tmp_path / "s"
    build_set(data, shards=2, per_shard=32)
    model_dir = tmp_path / "model"
    tiny_model().save_pretrained(model_dir)
    filler = tiny_disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # fill the disk, then leave two pages: the lock and the marker fit
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - 2 * 4096))
    out = tiny_disk / "analysis"
    with within(120):
        result = CliRunner().invoke(main, ["analyze", str(model_dir), "--data", str(data), "--out", str(out),
                                           "--probes", "pca", "--n", "64", "--quiet"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "the disk is full" in result.stderr, result.stderr
    assert leftovers(out) == [] if out.exists() else True
    assert not (out / LATENTS).exists() and not (out / "metrics.json").exists()
