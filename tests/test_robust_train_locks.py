"""train and analyze take the directory lock; a DDP run whose ranks lose different numbers of samples never stalls;
DataLoader workers of train die with their parent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner

from latentds.cli import main


@pytest.fixture(scope="module")
def shards(varied96):
    """The session's tiny varied render (conftest.py)."""
    return varied96


def _hold_lock(directory, purpose):
    """A separate live process holding the lock on ``directory`` until its stdin closes."""
    code = textwrap.dedent(f"""
        import sys
        from latentds.shardsets.lock import DirectoryLock
        lock = DirectoryLock({str(directory)!r}, purpose={purpose!r}).acquire()
        print("held", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


TRAIN = ["--batch-size", "8", "--max-steps", "2", "--quiet", "--set", "data.num_workers=0",
         "--set", "model.image_size=16", "--set", "model.width=8", "--set", "model.latent_dim=4"]


@pytest.mark.slow
def test_train_and_analyze_refuse_a_directory_another_process_writes(shards, tmp_path):
    run = tmp_path / "run"
    holder = _hold_lock(run, "render")
    try:
        result = CliRunner().invoke(main, ["train", "zoo/vae", "--data", str(shards), "--out", str(run), *TRAIN])
        assert result.exit_code == 2 and f"pid {holder.pid}" in result.stderr and "render" in result.stderr
        assert result.stderr.count("\n") == 1 and sorted(p.name for p in run.iterdir()) == [".latentds-lock"]
    finally:
        holder.communicate("")
    trained = CliRunner().invoke(main, ["train", "zoo/vae", "--data", str(shards), "--out", str(run), *TRAIN])
    assert trained.exit_code == 0, trained.stderr
    assert not (run / ".latentds-lock").exists()  # released when the run ended

    analysis = tmp_path / "analysis"
    holder = _hold_lock(analysis, "train")
    try:
        result = CliRunner().invoke(main, ["analyze", str(run), "--data", str(shards), "--out", str(analysis),
                                           "--probes", "walks"])
        assert result.exit_code == 2 and f"pid {holder.pid}" in result.stderr
        assert not (analysis / "metrics.json").exists()
    finally:
        holder.communicate("")


@pytest.mark.slow
def test_a_failed_fresh_run_leaves_no_directory_or_lock_behind(shards, tmp_path):
    run = tmp_path / "new" / "run"
    result = CliRunner().invoke(main, ["train", "zoo/vae", "--data", str(shards), "--out", str(run), *TRAIN,
                                       "--resume"])
    assert result.exit_code == 2 and "nothing to resume" in result.stderr
    assert not run.exists()


@pytest.mark.slow
def test_train_dataloader_workers_die_with_their_parent():
    from latentds.shardsets.processes import DieWithParent
    from latentds.zoo.loop import loader

    assert isinstance(loader([], 2, torch.device("cpu")).worker_init_fn, DieWithParent)
    assert loader([], 0, torch.device("cpu")).worker_init_fn is None


@pytest.mark.slow
def test_ddp_with_a_truncated_shard_ends_every_epoch_together(shards, tmp_path):
    """Rank 1's shard is cut short, so it has fewer batches than rank 0: without agreement rank 0 waits forever in
    its next all-reduce."""
    data = tmp_path / "data"
    shutil.copytree(shards, data)
    last = sorted(data.glob("*.tar"))[-1]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "latentds.cli", "train",
           "zoo/vae", "--data", str(data), "--out", str(out), "--batch-size", "8", "--epochs", "2", "--quiet",
           "--set", "data.num_workers=0", "--set", "train.log_every=1", "--set", "model.image_size=16",
           "--set", "model.width=8", "--set", "model.latent_dim=4"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trained vae" in proc.stdout and "lost" in proc.stderr  # the loss is reported, and the run finished
    import json

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = rows[-1]["step"]
    assert 0 < steps < 12  # fewer than the 6 steps per epoch of the intact set, and no hang


@pytest.mark.slow
def test_rendering_then_training_in_one_process_does_not_crash(tmp_path):
    """Mesa's llvmpipe and triton (imported by torchvision) each load an LLVM; triton after Mesa segfaulted."""
    code = textwrap.dedent(f"""
        from latentds.render import RenderSpec, render_shards
        render_shards(RenderSpec("phi", n=4, size=16), {str(tmp_path / "phi")!r}, workers=1, progress=False)
        import torchvision.models, latentds.zoo.trainer
        print("trained after rendering", flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "trained after rendering" in proc.stdout, proc.stderr[-1500:]


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_stops_train_cleanly(shards, tmp_path):
    """timeout(1) and job schedulers signal the whole group, DataLoader workers included: the run stops with the
    resume hint and no worker-death traceback."""
    import signal
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "latentds.cli", "train", "zoo/vae", "--data", str(shards), "--out", str(run),
           "--batch-size", "8", "--epochs", "500", "--quiet", "--set", "data.num_workers=2",
           "--set", "train.checkpoint_every=2", "--set", "model.image_size=16", "--set", "model.width=8",
           "--set", "model.latent_dim=4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while not (run / "checkpoint.pt").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert (run / "checkpoint.pt").is_file(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    time.sleep(3)  # mid-epoch, the workers prefetching
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM or proc.returncode == 130, err[-1500:]
    assert "--resume" in err and "Traceback" not in err and "killed by signal" not in err, err[-1500:]
