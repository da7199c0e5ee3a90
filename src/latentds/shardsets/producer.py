"""Produce a shard set: check the output directory, resume what is done, write the rest, write the manifest.

A producer passes a *spec* (what to write) and a *write* function (how to write one shard):

    spec.name, spec.params() -> JSON dict, spec.shard_ranges() -> [range], spec.shard_name(i) -> str,
    spec.finish(records) -> (manifest dict, dataset card str)
    write(spec, shard, out, on_samples) -> record       # a module-level function, so workers can import it

Output directory states:
- empty or new: a fresh run;
- holds ``.latentds-progress.jsonl`` (a run in progress) or ``manifest.json`` (a finished one) with the same
  parameters: resume; finished shards are checked (size and sha256) and kept, the rest are written;
- holds either with other parameters: refused unless ``overwrite``;
- holds anything else: refused (we never delete files we did not write).

The progress file's first line holds the parameters; each further line is the record of one finished shard,
appended only after the shard was renamed to its final name. ``manifest.json`` is written last.
"""

from __future__ import annotations

import faulthandler
import json
import multiprocessing as mp
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import webdataset as wds
from tqdm.auto import tqdm

from latentds.errors import InvalidParameterError, LatentdsError, OutputDirectoryError
from latentds.shardsets.manifest import CARD, MANIFEST, file_sha256, read_manifest, write_manifest

PROGRESS = ".latentds-progress.jsonl"
PARTIAL_SUFFIX = ".partial"
ENGINES = ("local", "ray")
MAX_POOL_STARTS = 3
# 2000-01-01T00:00:00Z: any fixed value makes the tar bytes reproducible.
TAR_MTIME = 946684800


@dataclass(frozen=True)
class ShardReport:
    """What a producer did."""

    manifest: dict
    out: Path
    done: int  # samples written by this call (0 when the set was already complete)
    seconds: float
    workers: int
    verb: str = "wrote"

    def summary(self) -> str:
        mb = sum(r["bytes"] for r in self.manifest["shards"]) / 1e6
        where = f"{self.out}: {len(self.manifest['shards'])} shards, {self.manifest['count']:,} images, {mb:,.1f} MB"
        if not self.done:
            return f"nothing to do, already complete: {where}"
        rate = self.done / self.seconds if self.seconds else float("inf")
        return (f"{self.verb} {self.done:,} images in {self.seconds:,.1f} s ({rate:,.0f} images/s, "
                f"{self.workers} worker{'s' if self.workers > 1 else ''}) -> {where}")


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def write_tar_shard(out: Path, name: str, first_index: int, samples: Iterable[dict],
                    on_samples: Callable[[int], None] | None = None) -> dict:
    """Write WebDataset samples (``__key__`` + bytes members) to ``out/name`` atomically; return its manifest
    record (name, count, first_index: the set-wide position of its first sample, bytes, sha256).

    Reproducible bytes: fixed mtime, owner and mode; members in key order. The tar is written under a hidden
    ``.NAME.partial`` name, synced, then renamed, so no reader ever sees half a shard under the final name.
    ``on_samples(k)`` is called every 50 samples (and at the end) with the number written since the last call.
    """
    tmp = out / f".{name}{PARTIAL_SUFFIX}"
    count = pending = 0
    with open(tmp, "wb") as f:
        with wds.TarWriter(f, user="latentds", group="latentds", mode=0o444, mtime=TAR_MTIME, encoder=False) as tar:
            for sample in samples:
                tar.write(sample)
                count += 1
                pending += 1
                if on_samples is not None and pending == 50:
                    on_samples(pending)
                    pending = 0
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename makes it look complete
    if on_samples is not None and pending:
        on_samples(pending)
    record = {"name": name, "count": count, "first_index": first_index, "bytes": tmp.stat().st_size,
              "sha256": file_sha256(tmp)}
    os.replace(tmp, out / name)
    return record


def produce_shards(spec, out: str | os.PathLike, write: Callable, *, workers: int | None = None,
                   overwrite: bool = False, engine: str = "local", progress: bool = True,
                   verb: str = "wrote") -> ShardReport:
    """Write the shard set ``spec`` describes into ``out`` with ``write``, resuming a run interrupted there.

    ``workers``: local processes (default: all cores). ``engine="ray"``: one task per shard on the Ray cluster
    that ``ray.init()`` joins (``out`` must then be on storage every node can write).
    """
    if engine not in ENGINES:
        raise InvalidParameterError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise InvalidParameterError(f"--workers must be at least 1 (got {workers})")
    out = Path(out)
    ranges = spec.shard_ranges()
    done = _prepare_output(out, spec, overwrite)
    todo = [i for i in range(len(ranges)) if i not in done]
    start = time.perf_counter()
    if todo:
        (out / MANIFEST).unlink(missing_ok=True)  # a finished set that lost a shard is unfinished until mended
        if engine == "ray":
            workers = int(_ray_session().cluster_resources().get("CPU", 1))
        workers = min(workers, len(todo))
        with tqdm(total=sum(len(r) for r in ranges), initial=sum(r["count"] for r in done.values()), unit="img",
                  smoothing=0.05, desc=f"{verb} {spec.name}", disable=not progress, dynamic_ncols=True) as bar:
            runner = _run_ray if engine == "ray" else _run_local
            with open(out / PROGRESS, "a", encoding="utf-8") as log:
                for attempt in range(1, MAX_POOL_STARTS + 1):
                    try:
                        left = [i for i in todo if i not in done]
                        for shard, record in runner(write, spec, out, left, workers, bar.update):
                            done[shard] = record
                            log.write(json.dumps({"shard": shard, **record}) + "\n")
                            log.flush()
                        break
                    except BrokenProcessPool:
                        # A worker died (a native crash or the OOM killer); its shard was never renamed, so
                        # nothing is half-written: start a fresh pool for what is left.
                        if attempt == MAX_POOL_STARTS:
                            raise LatentdsError(
                                f"worker processes died {attempt} times (see the messages above); finished shards "
                                f"are kept in {out}: run the same command again to resume, with fewer --workers "
                                "if memory is short") from None
                        bar.write(f"a worker process died; restarting the pool for the "
                                  f"{len(todo) - len(done)} shards left")
    seconds = time.perf_counter() - start
    manifest, card = spec.finish([done[i] for i in sorted(done)])
    if todo or not (out / MANIFEST).is_file():
        write_manifest(out, manifest, card)
    (out / PROGRESS).unlink(missing_ok=True)
    return ShardReport(manifest, out, sum(len(ranges[i]) for i in todo), seconds, workers if todo else 0, verb)


# --- the output directory --------------------------------------------------------------------------------------

def _existing_params(out: Path) -> dict | None:
    """Parameters of the shard set already in ``out`` (finished or in progress), or None if there is none."""
    if (out / MANIFEST).is_file():
        return read_manifest(out)["params"]
    if (out / PROGRESS).is_file():
        with open(out / PROGRESS, encoding="utf-8") as f:
            try:
                return json.loads(f.readline())["params"]
            except (ValueError, KeyError):
                return None
    return None


def _differences(old: dict, new: dict) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}={old.get(k)!r} there, {new.get(k)!r} asked" for k in keys)


def _remove_shard_set(out: Path, params: dict) -> None:
    name = params.get("name") or ""
    for path in out.glob(f"{name}-*.tar"):
        path.unlink()
    for path in [out / MANIFEST, out / CARD, out / PROGRESS, *out.glob(f".*{PARTIAL_SUFFIX}")]:
        path.unlink(missing_ok=True)


def _prepare_output(out: Path, spec, overwrite: bool) -> dict[int, dict]:
    """Make ``out`` ready for ``spec``; return the records of shards already finished there, by shard number."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputDirectoryError(f"cannot create --out {out}: {e.strerror}; choose a writable directory") from None
    if not out.is_dir():
        raise OutputDirectoryError(f"--out {out} is a file, not a directory; choose a directory")
    params = spec.params()
    existing = _existing_params(out)
    if existing is None and any(out.iterdir()):
        raise OutputDirectoryError(f"--out {out} is not empty and holds no latentds shard set; "
                                   "choose a new or empty directory")
    if existing is not None and existing != params:
        if not overwrite:
            raise OutputDirectoryError(f"--out {out} holds another dataset ({_differences(existing, params)}); "
                                       "use --overwrite to replace it, or choose another --out")
        _remove_shard_set(out, existing)
    for stale in out.glob(f".*{PARTIAL_SUFFIX}"):  # shards a killed run was writing
        stale.unlink()
    records = _finished_records(out, spec)
    try:
        if not (out / PROGRESS).is_file():
            with open(out / PROGRESS, "w", encoding="utf-8") as f:
                f.write(json.dumps({"params": params}) + "\n")
                f.writelines(json.dumps({"shard": i, **r}) + "\n" for i, r in sorted(records.items()))
    except OSError as e:
        raise OutputDirectoryError(f"cannot write in --out {out}: {e.strerror}; choose a writable directory") from None
    return records


def _finished_records(out: Path, spec) -> dict[int, dict]:
    """Records of finished shards (from the manifest or the progress file) whose files are intact."""
    if (out / MANIFEST).is_file():
        candidates = list(enumerate(read_manifest(out)["shards"]))
    elif (out / PROGRESS).is_file():
        candidates = []
        with open(out / PROGRESS, encoding="utf-8") as f:
            for line in list(f)[1:]:
                try:  # the last line may be cut short by a kill; that shard is simply written again
                    rec = json.loads(line)
                    candidates.append((rec.pop("shard"), rec))
                except (ValueError, KeyError):
                    continue
    else:
        return {}
    ranges = spec.shard_ranges()
    kept = {}
    for shard, rec in candidates:
        file = out / rec["name"]
        if (0 <= shard < len(ranges) and rec["name"] == spec.shard_name(shard) and rec["count"] == len(ranges[shard])
                and file.is_file() and file.stat().st_size == rec["bytes"] and file_sha256(file) == rec["sha256"]):
            kept[shard] = rec
    return kept


# --- engines ---------------------------------------------------------------------------------------------------

def _run_local(write: Callable, spec, out: Path, todo: list[int], workers: int,
               update: Callable[[int], None]) -> Iterator[tuple[int, dict]]:
    """Write shards in this process (workers=1) or in a pool of spawned processes."""
    if workers == 1:
        for shard in todo:
            yield shard, write(spec, shard, out, update)
        return
    # spawn, not fork: a forked child would share GL contexts, h5py handles and torch threads with us.
    ctx = mp.get_context("spawn")
    counts = ctx.Queue()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(counts,)) as pool:
        futures = {pool.submit(_worker_shard, write, spec, shard, str(out)): shard for shard in todo}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(counts, update)
                for future in finished:
                    yield futures[future], future.result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        finally:
            _drain(counts, update)


def _drain(counts, update: Callable[[int], None]) -> None:
    while True:
        try:
            update(counts.get_nowait())
        except Exception:  # queue.Empty, or a closed queue after an interrupt
            return


_COUNTS = None


def _init_worker(counts) -> None:
    global _COUNTS
    _COUNTS = counts
    faulthandler.enable()  # a native crash in a worker (GL, codecs) leaves its stack on stderr


def _worker_shard(write: Callable, spec, shard: int, out: str) -> dict:
    return write(spec, shard, Path(out), _COUNTS.put)


def _ray_session():
    """The ray module, connected: to the cluster named by RAY_ADDRESS, or to a local one it starts."""
    try:
        import ray  # noqa: PLC0415
    except ImportError:
        raise InvalidParameterError("engine 'ray' needs Ray: pip install 'latentds[ray]'") from None
    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    return ray


def _run_ray(write: Callable, spec, out: Path, todo: list[int], workers: int,
             update: Callable[[int], None]) -> Iterator[tuple[int, dict]]:
    """One Ray task per shard; each Ray worker process keeps its own state (e.g. a renderer) between tasks."""
    ray = _ray_session()
    task = ray.remote(num_cpus=1)(_ray_shard)
    refs = {task.remote(write, spec, shard, str(out.resolve())): shard for shard in todo}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        record = ray.get(ready[0])
        update(record["count"])
        yield refs[ready[0]], record


def _ray_shard(write: Callable, spec, shard: int, out: str) -> dict:
    return write(spec, shard, Path(out), None)
