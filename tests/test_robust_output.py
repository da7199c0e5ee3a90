"""Producers (render, pack) under bad conditions: foreign files, a second process, kills and signals, damaged
inputs and manifests, absurd sizes, a full disk. CLI errors stay one line with exit code 2."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest

import public_fixtures as fx
from conftest import tree_bytes
from latentds.datasets.shards import load_shards
from latentds.errors import OutputDirectoryError
from latentds.render import RenderSpec, render_shards, verify_shards
from latentds.shardsets import producer
from latentds.shardsets.manifest import read_manifest
from cli_helpers import one_line_error, run

LOCK = ".latentds-lock"  # latentds.shardsets.lock.LOCK


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name, data in tree_bytes(src).items():
        (dst / name).write_bytes(data)
    return dst


def _env():
    return {k: v for k, v in os.environ.items() if k not in ("LATENTDS_GL_PLATFORM",)}


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --- 4. --overwrite deletes only the set's own files; foreign files are always refused ------------------------------

def test_overwrite_deletes_only_what_the_set_names(phi_set, tmp_path):
    spec, reference = phi_set
    out = tmp_path / "o"
    render_shards(RenderSpec("phi", n=12, size=16, shard_size=10), out, workers=1, progress=False)
    for name in ["phi-mybackup.tar", "phi-old-2023.tar"]:
        (out / name).write_bytes(b"mine, not latentds's")
    with pytest.raises(OutputDirectoryError, match=r"files that latentds did not write \(phi-mybackup\.tar, "
                                                   r"phi-old-2023\.tar\)"):
        render_shards(spec, out, workers=1, progress=False, overwrite=True)
    assert (out / "phi-mybackup.tar").read_bytes() == b"mine, not latentds's" and (out / "phi-old-2023.tar").exists()
    assert verify_shards(out) == []  # the old set is untouched too
    (out / "phi-mybackup.tar").rename(tmp_path / "mybackup.tar")
    (out / "phi-old-2023.tar").rename(tmp_path / "old.tar")
    render_shards(spec, out, workers=1, progress=False, overwrite=True)
    assert tree_bytes(out) == tree_bytes(reference)


def test_a_foreign_file_beside_a_finished_set_is_refused(phi_set, tmp_path):
    spec, reference = phi_set
    out = _copy(reference, tmp_path / "s")
    (out / "notes.txt").write_text("my notes")
    result = run("render", "--phi", "--n", 40, "--size", 16, "--shard-size", 10, "--workers", 1, "--out", out,
                 "--quiet")
    assert one_line_error(result, "did not write (notes.txt)")
    assert (out / "notes.txt").read_text() == "my notes"


# --- 5. one writer per directory -----------------------------------------------------------------------------------

HOLD = textwrap.dedent("""
    import sys, time
    from latentds.shardsets.lock import DirectoryLock
    with DirectoryLock(sys.argv[1], "render", command="latentds render --phi --n 6000"):
        print("held", flush=True)
        time.sleep(600)
""")


@pytest.mark.slow
def test_a_held_lock_refuses_a_second_producer_and_a_dead_holders_lock_is_taken_over(phi_set, tmp_path):
    from latentds.errors import DirectoryBusyError
    from latentds.shardsets.lock import read_holder

    spec, reference = phi_set
    out = _copy(reference, tmp_path / "s")
    before = tree_bytes(out)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DirectoryBusyError, match=rf"in use by another latentds process: render, pid "
                                                     rf"{holder.pid} on {socket.gethostname()} since .*: latentds "
                                                     r"render --phi --n 6000"):
            render_shards(RenderSpec("phi", n=8, size=16), out, workers=1, progress=False, overwrite=True)
        assert tree_bytes(out) == before
        result = run("render", "--phi", "--n", 8, "--size", 16, "--out", out, "--overwrite", "--quiet")
        assert one_line_error(result, f"pid {holder.pid}")
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    assert read_holder(out)["pid"] == holder.pid  # the dead holder's record is still there...
    report = render_shards(spec, out, workers=1, progress=False)  # ...and taken over
    assert report.done == 0 and not (out / LOCK).exists() and tree_bytes(out) == before


@pytest.mark.slow
def test_a_stale_lock_file_is_taken_over_and_locks_nest(tmp_path):
    from latentds.shardsets.lock import DirectoryLock, read_holder

    (tmp_path / LOCK).write_text(json.dumps({"pid": 999999999, "host": socket.gethostname(), "purpose": "render",
                                             "command": "latentds render", "started": "then"}))
    with DirectoryLock(tmp_path, "pack") as lock:
        assert read_holder(tmp_path)["pid"] == os.getpid() and read_holder(tmp_path)["purpose"] == "pack"
        with DirectoryLock(tmp_path, "render"):  # the same process again: nests
            pass
        assert lock.held and (tmp_path / LOCK).exists()
    assert not (tmp_path / LOCK).exists()


@pytest.mark.slow
def test_a_forked_child_does_not_keep_the_lock(tmp_path):
    import multiprocessing as mp

    from latentds.shardsets.lock import DirectoryLock

    lock = DirectoryLock(tmp_path, "train").acquire()
    child = mp.get_context("fork").Process(target=time.sleep, args=(30,))
    child.start()
    try:
        lock.release()
        taker = subprocess.run([sys.executable, "-c", "import sys; from latentds.shardsets.lock import "
                                "DirectoryLock; DirectoryLock(sys.argv[1], 'render').acquire(); print('ok')",
                                str(tmp_path)], capture_output=True, text=True)
        assert taker.stdout.strip() == "ok", taker.stderr
    finally:
        child.kill()
        child.join()


# --- 6. workers die with their parent; SIGTERM stops like Ctrl-C ----------------------------------------------------

SLOW = textwrap.dedent('''
    """A shard producer that needs no OpenGL: slow, empty samples (a shard takes 50 s); each worker notes its
    pid."""
    import os, time
    from pathlib import Path
    from latentds.shardsets.producer import write_tar_shard

    class Spec:
        name = "slow"
        def __init__(self, n, size):
            self.n, self.size = n, size
        def params(self):
            return {"generator": "tests.slow", "name": "slow", "n": self.n, "shard_size": self.size}
        def shard_ranges(self):
            return [range(a, min(a + self.size, self.n)) for a in range(0, self.n, self.size)]
        def shard_name(self, i):
            return f"slow-{i:06d}.tar"
        def finish(self, records):
            return {"format": "latentds-shards", "shards": records}, "card"

    def write(spec, shard, out, on_samples):
        (Path(os.environ["PIDS"]) / str(os.getpid())).write_text("")
        indices = spec.shard_ranges()[shard]
        def samples():
            for i in indices:
                time.sleep(0.05)
                yield {"__key__": f"{i:09d}", "json": b"{}"}
        return write_tar_shard(out, spec.shard_name(shard), indices.start, samples(), on_samples)

    if __name__ == "__main__":
        import sys
        from latentds.shardsets.producer import produce_shards
        produce_shards(Spec(100000, 1000), sys.argv[1], write, workers=2, progress=False)  # 50 s per shard
''')


@pytest.mark.slow
def test_workers_die_when_the_producer_is_killed(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW)
    pids = tmp_path / "pids"
    pids.mkdir()
    proc = subprocess.Popen([sys.executable, str(tmp_path / "slow.py"), str(tmp_path / "out")],
                            env={**_env(), "PIDS": str(pids),
                                 "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}, start_new_session=True)
    try:
        assert _wait_until(lambda: len(list(pids.iterdir())) == 2, 120), "the workers did not start"
        workers = [int(p.name) for p in pids.iterdir()]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _wait_until(lambda: not any(_alive(w) for w in workers), 15), "orphaned workers kept running"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group this test started
        proc.wait()


@pytest.mark.slow
def test_die_with_parent_as_a_dataloader_worker_init_fn(tmp_path):
    code = textwrap.dedent("""
        import os, sys, time, torch
        from latentds.shardsets.processes import DieWithParent
        class Forever(torch.utils.data.IterableDataset):
            def __iter__(self):
                while True:
                    time.sleep(0.01)
                    yield torch.zeros(1)
        loader = torch.utils.data.DataLoader(Forever(), batch_size=None, num_workers=1, worker_init_fn=DieWithParent())
        for _ in loader:
            print("running", flush=True)
            time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "running"
        workers = _children(proc.pid)
        assert workers
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _wait_until(lambda: not any(_alive(w) for w in workers), 15)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_a_second_render_is_refused_and_sigterm_stops_the_first_like_ctrl_c(tmp_path):
    out = tmp_path / "r"
    args = ["render", "--phi", "--n", "6000", "--size", "16", "--shard-size", "100", "--workers", "2", "--quiet",
            "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "latentds.cli", *args], env=_env(), stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        progress = out / ".latentds-progress.jsonl"
        assert _wait_until(lambda: progress.is_file() and len(progress.read_text().splitlines()) >= 2, 180)
        finished = sorted(p.name for p in out.glob("*.tar"))
        second = run("render", "--phi", "--n", 50, "--size", 16, "--out", out, "--overwrite", "--quiet")
        assert one_line_error(second, "in use by another latentds process", f"pid {proc.pid}", "latentds render")
        assert set(finished) <= {p.name for p in out.glob("*.tar")} and progress.is_file()
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        err = proc.stderr.read()
        assert "Stopped by SIGTERM: finished shards are kept; run the same command again to resume." in err
        assert "Traceback" not in err
        assert _wait_until(lambda: not any(_alive(w) for w in workers), 15)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / LOCK).exists() and progress.is_file() and not list(out.glob(".*.partial"))


# --- 7. bad input ----------------------------------------------------------------------------------------------------

def test_pack_refuses_a_corrupt_coco_annotation_file_in_one_line(tmp_path):
    root = fx.build_coco(tmp_path / "coco")["root"]
    annotations = root / "annotations" / "instances_val2017.json"
    annotations.write_text(annotations.read_text()[:300])
    result = run("pack", "coco", root, "--split", "val", "--size", 8, "--workers", 1, "--out", tmp_path / "o",
                 "--quiet")
    assert one_line_error(result, "instances_val2017.json", "download and extract it again")
    assert not list((tmp_path / "o").glob(".*")) if (tmp_path / "o").exists() else True
    annotations.write_text("[1, 2, 3]")
    result = run("pack", "coco", root, "--split", "val", "--size", 8, "--out", tmp_path / "o2", "--quiet")
    assert one_line_error(result, "not a COCO annotation file")


def test_pack_skips_a_corrupt_jpeg_names_it_and_counts_it(tmp_path):
    from latentds.datasets.public import open_dataset

    root = fx.build_utkface(tmp_path / "utk")["root"]
    source = open_dataset("utkface", root, "all")
    total, victim = len(source), source.source_file(2)
    victim.write_bytes(victim.read_bytes()[:40])
    out = tmp_path / "o"
    result = run("pack", "utkface", root, "--split", "all", "--size", 8, "--shard-size", 3, "--workers", 1,
                 "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "skipped 1 damaged image" in result.stderr and victim.name in result.stderr
    manifest = read_manifest(out)
    assert manifest["count"] == total - 1 and [d["file"] for d in manifest["damaged"]] == [str(victim)]
    assert verify_shards(out) == [] and not list(out.glob(".*"))
    assert len(list(load_shards(out))) == total - 1
    again = run("pack", "utkface", root, "--split", "all", "--size", 8, "--shard-size", 3, "--workers", 1,
                "--out", out, "--quiet")
    assert again.exit_code == 0 and "nothing to do" in again.stdout  # the short shard is finished, not redone


def test_absurd_shard_counts_are_refused_and_planning_is_lazy(tmp_path):
    result = run("render", "--n", 1_000_000_000, "--shard-size", 1, "--out", tmp_path / "big")
    assert one_line_error(result, "1,000,000,000 shards", "--shard-size 1,000 or more")
    assert not (tmp_path / "big").exists()

    class Stop(Exception):
        pass

    def first_shard_stops(spec, shard, out, on_samples):
        raise Stop

    spec = RenderSpec("phi", n=1_000_000_000, shard_size=1000)  # a million shards
    tracemalloc.start()
    try:
        with pytest.raises(Stop):
            producer.produce_shards(spec, tmp_path / "lazy", first_shard_stops, workers=1, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000, f"planning took {peak / 1e6:.0f} MB"


def test_exclusive_presets(tmp_path):
    result = run("render", "--phi", "--varied", "--n", 4, "--out", tmp_path / "x")
    assert one_line_error(result, "--phi and --varied") and not (tmp_path / "x").exists()


@pytest.mark.parametrize("damage", ["missing keys", "array", "truncated", "bad shard record"])
def test_info_on_a_damaged_manifest_is_one_line_naming_the_fix(phi_set, tmp_path, damage):
    _, reference = phi_set
    out = _copy(reference, tmp_path / "s")
    text = (out / "manifest.json").read_text()
    manifest = json.loads(text)
    if damage == "missing keys":
        del manifest["shards"], manifest["command"]
        (out / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "array":
        (out / "manifest.json").write_text(json.dumps([manifest]))
    elif damage == "truncated":
        (out / "manifest.json").write_text(text[: len(text) // 2])
    else:
        manifest["shards"][0] = "phi-000000.tar"
        (out / "manifest.json").write_text(json.dumps(manifest))
    result = run("info", out, "--verify")
    assert one_line_error(result, "manifest.json is damaged", "latentds render --phi --n 40", "--overwrite")


def test_a_truncated_manifest_is_repaired_by_rerunning_with_overwrite(phi_set, tmp_path):
    spec, reference = phi_set
    out = _copy(reference, tmp_path / "s")
    text = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text(text[:1000])
    args = ["render", "--phi", "--n", 40, "--size", 16, "--shard-size", 10, "--workers", 1, "--out", out, "--quiet"]
    refused = run(*args)
    assert one_line_error(refused, "damaged", "--overwrite")
    assert run(*args, "--overwrite").exit_code == 0
    assert tree_bytes(out) == tree_bytes(reference)


def test_a_full_disk_is_one_line_and_the_render_resumes(phi_set, tmp_path, monkeypatch):
    spec, reference = phi_set
    real_open = open

    class FullDisk:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    calls = []

    def second_shard_fills_the_disk(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if str(path).endswith(".partial"):
            calls.append(path)
            if len(calls) == 2:
                return FullDisk(f)
        return f

    monkeypatch.setattr(producer, "open", second_shard_fills_the_disk, raising=False)
    out = tmp_path / "full"
    args = ["render", "--phi", "--n", 40, "--size", 16, "--shard-size", 10, "--workers", 1, "--out", out, "--quiet"]
    result = run(*args)
    assert one_line_error(result, "phi-000001.tar", "the disk is full", "run the same command again to resume")
    assert [p.name for p in out.glob("*.tar")] == ["phi-000000.tar"] and not list(out.glob(".*.partial"))
    monkeypatch.undo()
    assert run(*args).exit_code == 0
    assert tree_bytes(out) == tree_bytes(reference)


def test_weights_and_latents_are_readable_like_every_other_output(tmp_path):
    """safetensors creates its files 0o600; latentds gives them the mode of its other files (0o666 less umask)."""
    import numpy as np

    from latentds.analysis.encode import LATENTS, Codes
    from latentds.zoo.base import create

    mask = os.umask(0o022)
    try:
        create("vae", image_size=16, width=8, latent_dim=4).save_pretrained(tmp_path / "model")
        Codes(latents=np.zeros((2, 4), np.float32), keys=["a", "b"], labels=[{}, {}], factors=None, factor_mask=None,
              factor_names=None, source={}).save(tmp_path / "codes")
    finally:
        os.umask(mask)
    model, codes = tmp_path / "model", tmp_path / "codes"
    for file in (model / "model.safetensors", model / "config.json", codes / LATENTS):
        assert file.stat().st_mode & 0o777 == 0o644, file
