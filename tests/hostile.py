"""Helpers of the hostile-file tests: a hand-built shard set (no renderer needed) and bounds on time and memory,
so that a hang fails a test by a timeout and a memory bomb by a refused allocation, never by stalling CI."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

from latentds.shardsets.encoders import encode_json, encode_png


@contextlib.contextmanager
def within(seconds: int):
    """Raise TimeoutError in this (main) thread if the block runs longer than ``seconds`` (a loop in Python or a
    blocking open() alike: the alarm interrupts both). The timer it replaces (pytest-timeout's per-test one) is
    set again afterwards with the time it had left, so the test stays bounded after the block too."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))


def run_bounded(code: str, *, seconds: int = 60, memory_gb: float = 4.0) -> subprocess.CompletedProcess:
    """``python -c code`` in a child limited to ``seconds`` and ``memory_gb`` of address space (an allocation past
    it fails at once instead of eating the machine)."""
    limit = int(memory_gb * 2**30)

    def bound():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds,
                          preexec_fn=bound, env={**os.environ, "OMP_NUM_THREADS": "1"})


def sample_members(index: int, identity: int) -> list[tuple[str, bytes]]:
    pixels = np.full((8, 8, 3), (index * 7) % 256, np.uint8)
    return [(f"{index:09d}.png", encode_png(pixels)), (f"{index:09d}.json", encode_json({"identity": identity}))]


def write_tar(path: Path, members: list[tuple[str, bytes]], before: dict[int, bytes] | None = None) -> None:
    """A ustar tar of ``members``; ``before[i]``: raw bytes (e.g. a pax header block) put before member i."""
    buf = io.BytesIO()
    for i, (name, data) in enumerate(members):
        if before and i in before:
            buf.write(before[i])
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), 0
        buf.write(info.tobuf(format=tarfile.USTAR_FORMAT))
        buf.write(data + bytes(-len(data) % 512))
    buf.write(bytes(1024))
    path.write_bytes(buf.getvalue())


def pax_header(records: bytes) -> bytes:
    """A sound (checksummed) pax extended header block holding ``records`` as they are, padded."""
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size, info.mtime = tarfile.XHDTYPE, len(records), 0
    return info.tobuf(format=tarfile.USTAR_FORMAT) + records + bytes(-len(records) % 512)


def build_set(out: Path, shards: int = 2, per_shard: int = 10, identities: int = 4, **fields) -> dict:
    """A finished latentds-looking shard set of ``shards`` x ``per_shard`` 8x8 samples labelled with an identity;
    ``fields`` override manifest fields. Returns the manifest (also written, with a README.md card)."""
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for s in range(shards):
        members = [m for i in range(s * per_shard, (s + 1) * per_shard) for m in sample_members(i, i % identities)]
        path = out / f"toy-{s:06d}.tar"
        write_tar(path, members)
        records.append({"name": path.name, "count": per_shard, "bytes": path.stat().st_size,
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "first_index": s * per_shard})
    manifest = {"format": "latentds-shards", "format_version": 1, "generator": "latentds.render",
                "generator_version": "0.1.0", "name": "toy", "description": "a hand-built set", "summary": "toy set",
                "params": {"n": shards * per_shard}, "command": "latentds render --phi --n 20", "count":
                shards * per_shard, "image_size": 8, "members": {"png": "image", "json": "labels"},
                "shards": records, **fields}
    write_manifest(out, manifest)
    (out / "README.md").write_text("# toy\n\n    latentds render --phi --n 20\n")
    return manifest


def write_manifest(out: Path, manifest: dict) -> None:
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
