"""A run that diverges, runs out of disk, or is stopped says so in one line and ends (issues 21 and 22): NaN and
infinity never saved as a trained model and refused on loading, one stopped torchrun rank stops every rank, `kill
PID` ends train within seconds, impossible sizes refused before anything is allocated. Every process is bounded by
a timeout: a hang fails the test."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from click.testing import CliRunner

from latentds.cli import main
from latentds.errors import InvalidParameterError
from latentds.render import RenderSpec, render_shards
from latentds.zoo.base import create, load_pretrained, plan

TINY = ["--set", "model.image_size=16", "--set", "model.width=8", "--set", "model.latent_dim=4", "--quiet"]
ENV = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}


@pytest.fixture(scope="module")
def shards(varied48):
    """48 images of 16 px in 3 shards of 16: the session's render (conftest.py)."""
    return varied48


@pytest.fixture(scope="module")
def big_shards(tmp_path_factory):
    """64 images of 64 px: batches large enough (with prefetching) to fill a DataLoader worker's pipe."""
    out = tmp_path_factory.mktemp("stops-data64")
    render_shards(RenderSpec("varied", n=64, size=64, shard_size=16, seed=3), out, workers=1, progress=False)
    return out


def one_line_error(result, *parts):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.output and len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and all(p in lines[0] for p in parts), lines[0]
    return lines[0]


def train_args(shards, out, *extra):
    return ["train", "zoo/vae", "--data", str(shards), "--out", str(out), "--batch-size", "8",
            "--set", "data.num_workers=0", *TINY, *extra]


def all_finite(run) -> bool:
    return all(torch.isfinite(t).all() for t in load_pretrained(run).state_dict().values() if t.is_floating_point())


# --- divergence ----------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_diverging_run_stops_in_one_line_and_keeps_its_last_finite_checkpoint(shards, tmp_path):
    run = tmp_path / "run"
    first = CliRunner().invoke(main, train_args(shards, run, "--max-steps", "4", "--set", "train.checkpoint_every=2"))
    assert first.exit_code == 0, first.output
    rewritten = ("metrics.jsonl", "recipe.toml")  # the resumed run's log and recipe (with its train.lr)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name not in rewritten}
    result = CliRunner().invoke(main, train_args(shards, run, "--resume", "--max-steps", "40", "--set",
                                                 "train.checkpoint_every=2", "--set", "train.lr=1e10"))
    line = one_line_error(result, "training diverged at step", "of group 'model'", "keeps the last finite checkpoint "
                          "(step 4)", "--resume")
    assert "loss term" in line or "gradient" in line or "weights" in line
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name not in rewritten}
    assert after == before  # the checkpoint and model of step 4: nothing non-finite saved, nothing half-written
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 4 and all_finite(run)


def test_a_run_that_diverges_before_its_first_checkpoint_leaves_nothing(shards, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(main, train_args(shards, run, "--max-steps", "40", "--set", "train.lr=1e10",
                                                 "--set", "train.warmup_steps=0"))
    one_line_error(result, "training diverged at step", "nothing was saved")
    assert not run.exists()


def test_a_non_finite_gradient_of_a_finite_loss_stops_the_run(shards, tmp_path, monkeypatch):
    from latentds.zoo.models.vae import VAE

    original = VAE.losses

    def losses(self, batch, step=0):  # sqrt at 0: value 0, gradient 0 * inf = NaN
        terms = dict(original(self, batch, step)["model"])
        terms["loss"] = terms["loss"] + torch.sqrt((next(self.parameters()) * 0).sum())
        return {"model": terms}

    monkeypatch.setattr(VAE, "losses", losses)
    result = CliRunner().invoke(main, train_args(shards, tmp_path / "run", "--max-steps", "4"))
    one_line_error(result, "training diverged at step 1: the gradient of group 'model' is not finite")


@pytest.mark.slow
def test_weights_that_turn_non_finite_are_never_saved(shards, tmp_path, monkeypatch):
    real, calls = torch.optim.Adam.step, []

    def step(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, train_args(shards, run, "--max-steps", "4", "--set", "train.checkpoint_every=1"))
    one_line_error(result, "training diverged at step 2: the weights hold NaN", "last finite checkpoint (step 1)")
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 1 and all_finite(run)


# --- loading -------------------------------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    model = tmp_path / "model"
    create("vae", image_size=16, width=8, latent_dim=4).save_pretrained(model)
    return model


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_model_with_non_finite_weights_is_one_line_in_sample_and_analyze(value, saved, shards, tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(saved / "model.safetensors")
    tensors["decoder.project.0.bias"][0] = value
    save_file(tensors, saved / "model.safetensors")
    result = CliRunner().invoke(main, ["sample", str(saved), "--n", "4", "--out", str(tmp_path / "s.png")])
    one_line_error(result, "holds non-finite weights", "decoder.project.0.bias")
    assert not (tmp_path / "s.png").exists()
    result = CliRunner().invoke(main, ["analyze", str(saved), "--data", str(shards), "--out", str(tmp_path / "a"),
                                       "--probes", "pca", "--n", "16"])
    one_line_error(result, "holds non-finite weights")


@pytest.mark.parametrize("dtype,name", [(torch.int64, "I64"), (torch.bool, "BOOL"), (torch.float16, "F16")])
def test_weights_of_a_dtype_latentds_never_writes_are_refused(dtype, name, saved):
    from safetensors.torch import load_file, save_file

    tensors = load_file(saved / "model.safetensors")
    tensors["encoder.head.weight"] = tensors["encoder.head.weight"].to(dtype)
    save_file(tensors, saved / "model.safetensors")
    with pytest.raises(InvalidParameterError, match=f"tensor encoder.head.weight is {name}, where vae holds F32"):
        load_pretrained(saved)


# --- sizes ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option", ["model.latent_dim=1000000000", "model.width=100000", "model.image_size=8192"])
def test_a_config_too_large_for_memory_is_refused_before_anything_is_allocated(option, shards, tmp_path):
    run, start = tmp_path / "run", time.perf_counter()
    result = CliRunner().invoke(main, train_args(shards, run, "--set", option))
    one_line_error(result, option, "more than the", "GB")
    assert time.perf_counter() - start < 30 and not run.exists()


def test_a_saved_config_too_large_for_memory_is_refused_on_loading(saved):
    import json

    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps(config | {"latent_dim": 10**9}))
    with pytest.raises(InvalidParameterError,
                       match="config.json: model vae with .*model.latent_dim=1000000000.* would hold .* parameters"):
        load_pretrained(saved)


def test_training_memory_counts_activations_and_the_size_check_draws_no_random_numbers():
    from latentds.zoo.sizes import training_memory

    meta = plan("vae", image_size=16, width=8, latent_dim=4)
    assert all(p.device.type == "meta" for p in meta.parameters())
    training_memory(meta, 64, torch.device("cpu"), free=10**9)
    with pytest.raises(InvalidParameterError, match="at batch size 100,000 needs about .* activations"):
        training_memory(meta, 100_000, torch.device("cpu"), free=10**9)
    torch.manual_seed(0)
    a = create("vae", image_size=16, width=8, latent_dim=4)
    torch.manual_seed(0)
    b = type(a)(a.config)  # the same weights as without the meta build first: same seed, same bytes
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# --- batch sizes ---------------------------------------------------------------------------------------------------

def test_impossible_batch_sizes_are_refused_when_the_stream_is_made(shards):
    from latentds import load_shards

    with pytest.raises(InvalidParameterError, match="batch_size=5,000 is more than the 48 samples of this set"):
        load_shards(shards, batch_size=5000)
    with pytest.raises(InvalidParameterError, match="more than the 36 samples of the train split"):
        load_shards(shards, batch_size=40, holdout=0.25)
    for bad in (0, -4, True, 2.5):
        with pytest.raises(InvalidParameterError, match=f"batch_size must be a whole number .*got {bad!r}"):
            load_shards(shards, batch_size=bad)
    batches = list(load_shards(shards, batch_size=5000, partial=True))  # asked on purpose: one short batch
    assert [b["image"].shape[0] for b in batches] == [48]
    assert len(list(load_shards(shards, batch_size=48))) == 1


# --- the progress bar ----------------------------------------------------------------------------------------------

def test_the_progress_bar_shows_the_discriminators_loss_and_accuracy():
    from latentds.zoo.loop import postfix

    row = {"step": 10, "epoch": 0, "vae/loss": 5.0, "vae/recon": 4.0, "vae/kl": 1.0, "vae/adversarial": 0.7,
           "discriminator/loss": 0.69, "discriminator/accuracy": 0.5, "updates/vae": 1.0,
           "updates/discriminator": 0.4, "lr/vae": 1e-3, "lr/discriminator": 2e-4, "images_per_s": 100.0}
    shown = postfix(row, ["vae", "discriminator"])
    assert shown["discriminator/loss"] == "0.69" and shown["discriminator/accuracy"] == "0.5"
    assert shown["vae/loss"] == "5" and shown["upd/discriminator"] == "0.4" and "img/s" in shown
    one = postfix({"step": 1, "epoch": 0, "loss": 3.0, "recon": 2.0, "kl": 1.0, "lr": 1e-3, "images_per_s": 9.0},
                  ["model"])
    assert list(one) == ["loss", "recon", "kl", "img/s"]


# --- stopping: processes, bounded by timeouts ------------------------------------------------------------------------

def _start(cmd, **kwargs):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            **kwargs)


def _wait_for(proc, path, seconds=240):
    deadline = time.monotonic() + seconds
    while not path.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert path.is_file(), proc.communicate(timeout=60)


def _finish(proc, seconds):
    """(returncode, stderr) within ``seconds``; a process still running then is killed and the test fails."""
    try:
        _, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"still running {seconds} s after the stop: {proc.communicate()[1][-1500:]}")
    return proc.returncode, err


def _train_with_workers(data, run):
    return [sys.executable, "-m", "latentds.cli", "train", "zoo/vae", "--data", str(data), "--out", str(run),
            "--batch-size", "16", "--epochs", "500", "--set", "data.num_workers=2", "--set", "train.checkpoint_every=2",
            *TINY]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "SIGINT to the group"])
def test_stopping_train_with_dataloader_workers_ends_within_seconds(how, big_shards, tmp_path):
    """`kill PID` (the main process alone) waited forever in multiprocessing's exit join; Ctrl-C to the group printed
    a worker's traceback beside the hint."""
    run = tmp_path / "run"
    proc = _start(_train_with_workers(big_shards, run))
    _wait_for(proc, run / "checkpoint.pt")
    time.sleep(1.0)  # mid-epoch: the workers' batches fill their queues
    if how == "SIGINT to the group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, getattr(signal, how))
    code, err = _finish(proc, 60)
    signum = signal.SIGINT if how.startswith("SIGINT") else getattr(signal, how)
    assert code == (130 if signum == signal.SIGINT else 128 + signum), err[-1500:]
    assert "Traceback" not in err and "Exception ignored" not in err, err[-1500:]
    assert err.strip().splitlines()[-1].endswith(f"{run} keeps its last checkpoint; run the same command with "
                                                 "--resume to continue.")


ENOSPC_AFTER_FIRST_CHECKPOINT = """
import errno, sys, torch
real, calls = torch.save, []
def save(obj, f, *args, **kwargs):
    calls.append(1)
    if len(calls) > 1:  # the second checkpoint meets a full disk
        f.write(b"partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")
    return real(obj, f, *args, **kwargs)
torch.save = save
from latentds.cli import main
sys.argv = ["latentds"] + sys.argv[1:]
main()
"""


@pytest.mark.slow
def test_a_full_disk_while_checkpointing_is_one_line_and_no_hang_simulated(big_shards, tmp_path):
    run = tmp_path / "run"
    cmd = _train_with_workers(big_shards, run)
    proc = _start([sys.executable, "-c", ENOSPC_AFTER_FIRST_CHECKPOINT, *cmd[3:]])
    code, err = _finish(proc, 240)
    assert code == 2 and "Traceback" not in err, err[-1500:]
    # the error is the one line after the resize note (64 px data, a 16 px model), which training starts with
    assert [line for line in err.strip().splitlines() if not line.startswith("note: ")] == [
        f"Error: no space left on the device writing the checkpoint of step 4 to "
                                        f"{run}; free space, then run the same command with --resume (it keeps its "
                                        "last complete checkpoint)"]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 2
    assert not [p.name for p in run.iterdir() if p.name.endswith(".partial")]


@contextlib.contextmanager
def _small_disk(path, size):
    path.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True,
                       capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot mount a tmpfs here (not root); the simulated full disk test covers this")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@pytest.mark.slow
def test_a_real_full_disk_while_training_is_one_line_and_no_hang(big_shards, tmp_path):
    with _small_disk(tmp_path / "disk", "8m") as disk:
        run = disk / "run"
        proc = _start(_train_with_workers(big_shards, run))
        _wait_for(proc, run / "checkpoint.pt")
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as f:  # fill the disk to the last byte
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        with contextlib.suppress(OSError), open(disk / "filler", "ab") as f:
            while True:
                f.write(b"\0")
                f.flush()
        code, err = _finish(proc, 120)
        assert code == 2 and "Traceback" not in err, err[-1500:]
        lines = [line for line in err.strip().splitlines() if not line.startswith("note: ")]  # beside the resize note
        assert len(lines) == 1 and lines[0].startswith("Error: no space left on the device writing the ")
        assert lines[0].endswith("free space, then run the same command with --resume (it keeps its last complete "
                                 "checkpoint)"), lines[0]
        step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
        assert step >= 2 and all_finite(run)
        assert not [p.name for p in run.iterdir() if p.name.endswith(".partial")]


@pytest.mark.slow
@pytest.mark.parametrize("rank", [1, 0])
def test_sigterm_to_one_ddp_rank_stops_every_rank_with_the_hint(rank, shards, tmp_path):
    """Rank 1 left alone waited in all_reduce forever (with DataLoader workers, the stopped rank never exited)."""
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "latentds.cli", "train",
           "zoo/vae", "--data", str(shards), "--out", str(run), "--batch-size", "8", "--epochs", "500",
           "--set", "data.num_workers=1", "--set", "train.checkpoint_every=2", *TINY]
    proc = _start(cmd)
    _wait_for(proc, run / "checkpoint.pt", 300)
    pid = _rank_pid(proc.pid, rank)
    os.kill(pid, signal.SIGTERM)
    code, err = _finish(proc, 90)
    assert code != 0
    hint = f"Stopped by SIGTERM: {run} keeps its last checkpoint; run the same command with --resume to continue."
    assert err.count(hint) == 1, err[-3000:]  # rank 0 says it, whichever rank was stopped
    assert "Connection closed" not in err and "[rank0]: Traceback" not in err, err[-3000:]
    assert not (run / ".latentds-lock").exists() and all_finite(run)


def _rank_pid(torchrun: int, rank: int) -> int:
    """The pid of the latentds process of ``rank`` started by ``torchrun`` (from /proc: its environment)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                environ = open(f"/proc/{entry}/environ", "rb").read().split(b"\0")
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read()
            except OSError:
                continue
            if (b"latentds.cli" in cmdline and b"torch.distributed.run" not in cmdline and f"RANK={rank}".encode()
                    in environ and any(e.startswith(b"TORCHELASTIC_RUN_ID=") for e in environ)
                    and _descends_from(int(entry), torchrun)):
                return int(entry)
        time.sleep(0.2)
    pytest.fail(f"no rank {rank} process under torchrun {torchrun}")


def _descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(8):
        try:
            pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == ancestor:
            return True
    return False


@pytest.mark.slow
def test_workers_leave_at_once_on_sigterm_and_leave_ctrl_c_to_the_main_process():
    """A worker that took SIGTERM as Ctrl-C ended its loop, then waited at exit to flush batches nobody read."""
    code = textwrap.dedent("""
        import os, signal, time
        from latentds.shardsets.processes import quiet_worker
        quiet_worker(0)
        os.kill(os.getpid(), signal.SIGINT)  # ignored: the main process stops the workers
        print("after SIGINT", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        print("still here", flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0 and proc.stdout.strip() == "after SIGINT" and not proc.stderr, proc.stderr


def test_a_signal_inside_a_finaliser_or_weakref_callback_is_recorded_and_raised_at_the_next_step():
    # Python swallows an exception raised in a weakref callback or a __del__ and prints "Exception ignored" with a
    # traceback: a signal landing there (seen mid-epoch) must stop the run at the next step instead
    import weakref

    from latentds.shardsets.processes import Terminated
    from latentds.zoo.agreement import StepAgreement

    class Finalised:
        def __del__(self):
            deliver()

    def deliver():  # what the signal handler is given: the frame the signal interrupted
        try:
            agree._record(signal.SIGTERM, sys._getframe())
        except BaseException as e:  # noqa: BLE001
            raised.append(e)

    for collect in (lambda: Finalised(), lambda: weakref.finalize(type("Key", (), {})(), deliver)):
        raised = []
        with pytest.raises(Terminated), StepAgreement(1) as agree:
            collect()  # collected at once: the "signal" arrives inside its __del__ / weakref callback
            assert raised == [] and agree.signum == signal.SIGTERM  # recorded, not raised where it is swallowed
            agree.go(True)  # the next step raises it
    with pytest.raises(Terminated), StepAgreement(1) as agree:  # anywhere else it raises at once
        agree._record(signal.SIGTERM, sys._getframe())


def test_end_workers_ends_the_workers_of_an_iterator_a_traceback_still_holds(shards):
    # a stop raised inside next(batches) keeps the iterator alive in its traceback: its workers must end anyway,
    # else torch's SIGCHLD handler raises at exit for the workers a group-wide SIGTERM ended
    from latentds.datasets.shards import load_shards
    from latentds.zoo.loop import end_workers, loader

    batches = iter(loader(load_shards(shards, batch_size=4), 2, torch.device("cpu")))
    next(batches)
    workers = list(batches._workers)
    assert workers and all(w.is_alive() for w in workers)
    end_workers(batches)  # while `batches` is still referenced
    assert not any(w.is_alive() for w in workers)
    end_workers(iter([]))  # an in-process iterator: nothing to end
