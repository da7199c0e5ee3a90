"""Every long command stops the same way on Ctrl-C, SIGTERM and SIGHUP: one line saying what was kept and how to go
on, exit 130 or 128 + the signal, locks released; a checkpoint always comes with a loadable model."""

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from latentds.cli import main
from latentds.render import RenderSpec, render_shards
from latentds.shardsets.processes import Terminated

TINY = ["--set", "model.image_size=16", "--set", "model.width=8", "--set", "model.latent_dim=4", "--quiet"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("stopping-data")
    render_shards(RenderSpec("varied", n=48, size=16, shard_size=16, seed=5), out, workers=1, progress=False)
    return out


def _raise(error):
    def stop(*args, **kwargs):
        raise error
    return stop


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, None])
def test_train_and_analyze_exit_with_the_signal_and_one_line(shards, tmp_path, monkeypatch, signum):
    import latentds.analysis.runner
    import latentds.zoo.trainer

    error = Terminated(signum) if signum else KeyboardInterrupt()
    code = 128 + signum if signum else 130
    what = f"Stopped by {signal.Signals(signum).name}" if signum else "Interrupted"
    monkeypatch.setattr(latentds.zoo.trainer, "train", _raise(error))
    result = CliRunner().invoke(main, ["train", "zoo/vae", "--data", str(shards), "--out", str(tmp_path / "r")] + TINY)
    assert result.exit_code == code, result.output
    assert result.stderr.strip().splitlines() == [f"{what}: stopped before training started; nothing was written to "
                                                  f"{tmp_path / 'r'}."]
    monkeypatch.setattr(latentds.analysis.runner, "run", _raise(error))
    monkeypatch.setattr("latentds.zoo.base.load_pretrained", lambda name: None)
    result = CliRunner().invoke(main, ["analyze", "some-run", "--data", str(shards), "--out", str(tmp_path / "a")])
    assert result.exit_code == code, result.output
    assert result.stderr.strip().splitlines()[-1].startswith(f"{what}: the encoded latents in ")


def test_a_worker_error_is_one_line(shards, tmp_path):
    """An error raised in a DataLoader worker reaches the CLI with torch's worker traceback in its message."""
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "zoo/vae", "--data", str(shards), "--out", str(out), "--batch-size",
                                       "8", "--set", "data.batches=pairs", "--set", "data.num_workers=1"] + TINY)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "identity" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "worker" not in lines[0]


@pytest.mark.slow
def test_a_save_cut_short_leaves_no_partial_model_and_no_checkpoint_without_its_model(shards, tmp_path, monkeypatch):
    from latentds.zoo.base import LatentModel
    from latentds.zoo.recipe import load_recipe
    from latentds.zoo.trainer import train

    recipe = load_recipe("zoo/vae", ["model.image_size=16", "model.width=8", "model.latent_dim=4",
                                     "data.num_workers=0", "train.batch_size=8", "train.max_steps=4",
                                     "train.checkpoint_every=2", f'data.shards="{shards}"'])
    monkeypatch.setattr(LatentModel, "save_pretrained", _raise(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        train(recipe, tmp_path / "run", progress=False)
    left = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert ".model.partial" not in left and "checkpoint.pt" not in left, left


@pytest.mark.slow
def test_sighup_stops_a_real_training_run_and_releases_its_lock(shards, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "latentds.cli", "train", "zoo/vae", "--data", str(shards), "--out", str(run),
           "--batch-size", "8", "--epochs", "500", "--set", "data.num_workers=0", "--set", "train.checkpoint_every=2",
           ] + TINY
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (run / "checkpoint.pt").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
    assert (run / "checkpoint.pt").is_file()
    os.kill(proc.pid, signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGHUP, err[-1500:]
    assert err.strip().splitlines()[-1].startswith("Stopped by SIGHUP: ") and "--resume" in err
    assert not (run / ".latentds-lock").exists() and (run / "config.json").is_file()


def test_an_interrupt_wrapped_by_a_library_still_stops_with_the_hint(shards, tmp_path, monkeypatch):
    """Ctrl-C inside a C extension's import surfaces as ImportError caused by KeyboardInterrupt (seen in CI with
    matplotlib's ft2font): still an interrupt, exit 130 and the hint, no traceback."""
    import latentds.zoo.trainer

    def wrapped(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise ImportError("initialization failed") from e

    monkeypatch.setattr(latentds.zoo.trainer, "train", wrapped)
    result = CliRunner().invoke(main, ["train", "zoo/vae", "--data", str(shards), "--out", str(tmp_path / "r")] + TINY)
    assert result.exit_code == 130 and result.stderr.strip().startswith("Interrupted: "), result.output
    monkeypatch.setattr(latentds.zoo.trainer, "train", _raise(ImportError("a real one")))
    result = CliRunner().invoke(main, ["train", "zoo/vae", "--data", str(shards), "--out", str(tmp_path / "r")] + TINY)
    assert isinstance(result.exception, ImportError)  # anything else is not taken for an interrupt
