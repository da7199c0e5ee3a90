"""Produce a shard set: lock and check the output directory, resume what is done, write the rest, write the
manifest.

    produce_shards(spec, out)            # spec.samples(i) gives shard i's samples; the producer writes them
    produce_shards(spec, out, write)     # or write(spec, shard, out, on_samples) -> record writes shard i

What a spec must provide (``name``, ``params()``, ``shard_ranges()``, ``shard_name(i)``, ``finish(records)``,
optionally ``command()``, and ``samples(i)`` when no ``write`` is given) is the contract written out in
latentds.shardsets.spec (``ProducibleSpec``, ``ShardWriter``); ``ShardSetSpec`` there fills most of it in, so a new
kind of shard set is one class. ``write`` is a module-level function, so that worker processes can import it; it
writes its tar with ``write_tar_shard`` (atomic, reproducible) and returns the record.

The output directory is locked for the whole run (latentds.shardsets.lock): a second producer there is refused
with one line naming the first. Its states:
- empty or new: a fresh run;
- holds ``.latentds-progress.jsonl`` (a run in progress) or ``manifest.json`` (a finished one) with the same
  parameters: resume; finished shards are checked (size and sha256) and kept, the rest are written;
- holds either with other parameters: refused unless ``overwrite``, which deletes exactly the files of that set
  (its manifest, card, progress file, the shards its records and parameters name, its partial files) and nothing
  else; a damaged manifest or progress file likewise needs ``overwrite``, which then writes the set again;
- holds anything else, beside a set or not: refused (we never delete, or write beside, files we did not write).

The progress file's first line holds the parameters (and the command that resumes the run); each further line
is the record of one finished shard, appended only after the shard was renamed to its final name.
``manifest.json`` is written last. Shards are planned lazily (a billion samples cost no memory before they are
written) and at most ``MAX_SHARDS`` shards make a set (its manifest lists every one); see latentds.shardsets.plan.
Shards are handed to the engine (a local process pool, or Ray tasks) a few per worker ahead (``_in_flight``).
"""

from __future__ import annotations

import contextlib
import errno
import faulthandler
import json
import multiprocessing as mp
import os
import re
import shlex
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tqdm.auto import tqdm

from latentds.errors import InvalidParameterError, LatentdsError, OutputDirectoryError, ShardError
from latentds.shardsets.atomic import atomic_path, partial_name
from latentds.shardsets.lock import LOCK, DirectoryLock
from latentds.shardsets.manifest import (CARD, FORMAT, MANIFEST, PROGRESS, file_sha256, read_manifest,
                                         safe_shard_name, write_manifest)
from latentds.shardsets.processes import die_with_parent
from latentds.shardsets.spec import ShardWriter, spec_problems
from latentds.shardsets.tarwriter import ShardTarWriter

PARTIAL_SUFFIX = partial_name("shard.tar").suffix  # ".partial" (latentds.shardsets.atomic)
ENGINES = ("local", "ray")
MAX_POOL_STARTS = 3
IN_FLIGHT_PER_WORKER = 2  # shards handed to the pool ahead of the workers (the rest wait, unplanned)
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
        n = len(self.manifest["shards"])
        where = f"{self.out}: {n} shard{'s' if n != 1 else ''}, {self.manifest['count']:,} images, {mb:,.1f} MB"
        left = []  # a pack's source files it could not use: said here, detailed in the dataset card
        skipped, damaged = self.manifest.get("skipped") or 0, self.manifest.get("damaged") or []
        if skipped:
            left.append(f"{skipped:,} source file{'s' if skipped != 1 else ''} skipped (a name or record that does not "
                        "parse)")
        if isinstance(damaged, list) and damaged:
            left.append(f"{len(damaged):,} undecodable image{'s' if len(damaged) != 1 else ''} left out")
        if left:
            where += f"; {', '.join(left)}: see {self.out}/README.md"
        if not self.done:
            return f"nothing to do, already complete: {where}"
        rate = self.done / self.seconds if self.seconds else float("inf")
        return (f"{self.verb} {self.done:,} images in {self.seconds:,.1f} s ({rate:,.0f} images/s, "
                f"{self.workers} worker{'s' if self.workers > 1 else ''}) -> {where}")


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def write_failure(path: Path, error: OSError) -> str:
    """One line for a failed write: what, why (a full disk said plainly), and that the run can be resumed."""
    why = ("the disk is full" if error.errno in (errno.ENOSPC, errno.EDQUOT)
           else error.strerror or str(error))
    return (f"cannot write {path}: {why}; finished shards are kept: free some space (or fix the cause) and run "
            "the same command again to resume")


@contextlib.contextmanager
def _writing(path: Path):
    """OSError within -> OutputDirectoryError (one line naming ``path``)."""
    try:
        yield
    except OSError as e:
        raise OutputDirectoryError(write_failure(path, e)) from None


class _SourceError(Exception):
    """An error raised while producing a sample (not while writing it), carried past the write-error handling."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _pulled(samples: Iterable[dict]) -> Iterator[dict]:
    it = iter(samples)
    while True:
        try:
            sample = next(it)
        except StopIteration:
            return
        except Exception as e:  # noqa: BLE001  (re-raised as it was by write_tar_shard)
            raise _SourceError(e) from e
        yield sample


def write_tar_shard(out: Path, name: str, first_index: int, samples: Iterable[dict],
                    on_samples: Callable[[int], None] | None = None) -> dict:
    """Write WebDataset samples (``__key__`` + bytes members) to ``out/name`` atomically; return its manifest
    record (name, count, first_index: the set-wide position of its first sample, bytes, sha256).

    Reproducible bytes: fixed mtime, owner and mode; members in key order. The tar is written under a hidden
    ``.NAME.partial`` name (latentds.shardsets.atomic), synced, then renamed, so no reader ever sees half a shard
    under the final name; on any error the partial file is removed, and a failed write (a full disk) is an
    OutputDirectoryError.
    ``on_samples(k)`` is called every 50 samples (and at the end) with the number written since the last call.
    """
    count = pending = 0
    try:
        with _writing(out / name), atomic_path(out / name) as tmp:
            with open(tmp, "wb") as f:
                with ShardTarWriter(f, user="latentds", group="latentds", mode=0o444, mtime=TAR_MTIME) as tar:
                    for sample in _pulled(samples):
                        tar.write(sample)
                        count += 1
                        pending += 1
                        if on_samples is not None and pending == 50:
                            on_samples(pending)
                            pending = 0
                f.flush()
                os.fsync(f.fileno())  # on disk before the rename makes it look complete
            record = {"name": name, "count": count, "first_index": first_index, "bytes": tmp.stat().st_size,
                      "sha256": file_sha256(tmp)}
    except _SourceError as e:  # the partial file is gone (atomic_path); the source's error is raised as it was
        raise e.error.with_traceback(e.error.__traceback__) from None
    if on_samples is not None and pending:
        on_samples(pending)
    return record


def write_samples(spec, shard: int, out: Path, on_samples: Callable[[int], None] | None = None) -> dict:
    """The writer of a spec that gives its own samples: shard ``shard`` of ``spec.samples(shard)``, as a tar."""
    return write_tar_shard(out, spec.shard_name(shard), spec.shard_ranges()[shard].start, spec.samples(shard),
                           on_samples)


def produce_shards(spec, out: str | os.PathLike, write: ShardWriter | None = None, *, workers: int | None = None,
                   overwrite: bool = False, engine: str = "local", progress: bool = True,
                   verb: str = "wrote") -> ShardReport:
    """Write the shard set ``spec`` describes into ``out`` with ``write`` (default: ``write_samples``, the spec's
    own ``samples``), resuming a run interrupted there. See latentds.shardsets.spec for what ``spec`` provides.

    ``workers``: local processes (default: all cores). ``engine="ray"``: one task per shard on the Ray cluster
    that ``ray.init()`` joins (``out`` must then be on storage every node can write).
    Raises DirectoryBusyError when another process is writing ``out``.
    """
    problems = spec_problems(spec, write)
    if problems:
        raise TypeError(f"{type(spec).__name__} cannot be produced: {'; '.join(problems)} "
                        "(see latentds.shardsets.spec)")
    write = write_samples if write is None else write
    if engine not in ENGINES:
        raise InvalidParameterError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise InvalidParameterError(f"--workers must be at least 1 (got {workers})")
    out = Path(out)
    ranges = spec.shard_ranges()
    _make_directory(out)
    purpose = str(spec.params().get("generator", "latentds.write")).rpartition(".")[2]
    with DirectoryLock(out, purpose=purpose):
        done = _prepare_output(out, spec, overwrite)
        n_shards = len(ranges)
        total = getattr(ranges, "total", None)
        total = sum(len(r) for r in ranges) if total is None else total
        initial = sum(len(ranges[i]) for i in done)
        start = time.perf_counter()
        if len(done) < n_shards:
            (out / MANIFEST).unlink(missing_ok=True)  # a finished set that lost a shard is unfinished until mended
            if engine == "ray":
                workers = int(_ray_session().cluster_resources().get("CPU", 1))
            workers = min(workers, n_shards - len(done))
            with tqdm(total=total, initial=initial, unit="img", smoothing=0.05, desc=f"{verb} {spec.name}",
                      disable=not progress, dynamic_ncols=True) as bar:
                runner = _run_ray if engine == "ray" else _run_local
                with _writing(out / PROGRESS):
                    log = open(out / PROGRESS, "a", encoding="utf-8")
                with log:
                    for attempt in range(1, MAX_POOL_STARTS + 1):
                        try:
                            left = (i for i in range(n_shards) if i not in done)
                            for shard, record in runner(write, spec, out, left, workers, bar.update):
                                done[shard] = record
                                with _writing(out / PROGRESS):
                                    log.write(json.dumps({"shard": shard, **record}) + "\n")
                                    log.flush()
                            break
                        except BrokenProcessPool:
                            # A worker died (a native crash or the OOM killer); its shard was never renamed, so
                            # nothing is half-written: start a fresh pool for what is left.
                            if attempt == MAX_POOL_STARTS:
                                raise LatentdsError(
                                    f"worker processes died {attempt} times (see the messages above); finished "
                                    f"shards are kept in {out}: run the same command again to resume, with fewer "
                                    "--workers if memory is short") from None
                            bar.write(restart_message(n_shards - len(done)))
        seconds = time.perf_counter() - start
        manifest, card = spec.finish([done[i] for i in sorted(done)])
        wrote = total - initial
        if wrote or not (out / MANIFEST).is_file():
            with _writing(out / MANIFEST):
                write_manifest(out, manifest, card)
        (out / PROGRESS).unlink(missing_ok=True)
    return ShardReport(manifest, out, wrote, seconds, workers if wrote else 0, verb)


def restart_message(left: int) -> str:
    """What is said when a pool is started again after a worker died (``left``: shards not yet finished, those
    finished before a resume included)."""
    return f"a worker process died; restarting the pool for the {left:,} shard{'s' * (left != 1)} left"


# --- the output directory --------------------------------------------------------------------------------------

def _make_directory(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputDirectoryError(f"cannot create --out {out}: {e.strerror}; choose a writable directory") from None
    if not out.is_dir():
        raise OutputDirectoryError(f"--out {out} is a file, not a directory; choose a directory")


@dataclass
class _Existing:
    """The shard set found in an output directory: its parameters (None when damaged), which file names are
    its own, and what is damaged (None when sound)."""

    params: dict | None
    owns: Callable[[str], bool]
    damage: str | None = None


def _set_files(params: dict, records: Iterable[dict] = ()) -> Callable[[str], bool]:
    """Whether a file name belongs to the set with ``params`` (name, shard_size, n or count) and these shard
    records: its shards (named by the records, or by the parameters: NAME-000000.tar up to its shard count),
    manifest, card, progress file and their hidden ``.partial`` files."""
    named = {r["name"] for r in records if isinstance(r, dict) and safe_shard_name(r.get("name"))}
    prefix, size = params.get("name"), params.get("shard_size")
    n = params.get("n", params.get("count"))
    shards = -(-n // size) if isinstance(n, int) and isinstance(size, int) and size > 0 else 0
    pattern = re.compile(re.escape(prefix) + r"-(\d{6,})\.tar") if isinstance(prefix, str) and prefix else None

    def owns(file: str) -> bool:
        if file.startswith(".") and file.endswith(PARTIAL_SUFFIX):
            file = file[1:-len(PARTIAL_SUFFIX)]
        if file in (MANIFEST, CARD, PROGRESS) or file in named:
            return True
        found = pattern.fullmatch(file) if pattern else None
        return bool(found) and int(found.group(1)) < shards and file == f"{prefix}-{int(found.group(1)):06d}.tar"

    return owns


def _existing_set(out: Path, spec) -> _Existing | None:
    """The shard set already in ``out`` (finished, in progress or damaged), or None if there is none."""
    if (out / MANIFEST).is_file():
        try:
            manifest = read_manifest(out)
        except ShardError as e:
            if not _looks_like_ours(out):
                return None  # someone else's manifest.json: the directory is foreign
            return _Existing(None, _set_files(spec.params()), f"{out / MANIFEST} is damaged ({_reason(e)})")
        return _Existing(manifest["params"], _set_files(manifest["params"], manifest["shards"]))
    if (out / PROGRESS).is_file():
        try:
            params, records = _read_progress(out)
        except (OSError, ValueError, KeyError, TypeError) as e:
            return _Existing(None, _set_files(spec.params()), f"{out / PROGRESS} is damaged ({e})")
        return _Existing(params, _set_files(params, [r for _, r in records]))
    return None


def _read_progress(out: Path) -> tuple[dict, list[tuple[int, dict]]]:
    """The parameters and the (shard, record) pairs of the progress file in ``out``; OSError, ValueError,
    KeyError or TypeError when it is damaged (a record cut short by a kill is only left out)."""
    with open(out / PROGRESS, encoding="utf-8") as f:
        params = json.loads(f.readline())["params"]
        records = list(_progress_records(f))
    if not isinstance(params, dict):
        raise ValueError("no parameters")
    return params, records


def _reason(error: ShardError) -> str:
    found = re.search(r"is damaged \((.*)\); rebuild", str(error))
    return found.group(1) if found else str(error)


def _looks_like_ours(out: Path) -> bool:
    """Whether a manifest.json that does not read as a latentds manifest was still written by latentds (its
    first bytes say so, or the dataset card beside it is ours)."""
    try:
        with open(out / MANIFEST, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return FORMAT.encode() in head or b'"generator": "latentds.' in head or (out / CARD).is_file() and bool(
        re.search(r"^    latentds (render|pack) ", (out / CARD).read_text(encoding="utf-8", errors="replace"), re.M))


def _progress_records(lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
    for line in lines:
        try:  # the last line may be cut short by a kill; that shard is simply written again
            rec = json.loads(line)
            shard = rec.pop("shard")
            if isinstance(shard, int) and isinstance(rec.get("name"), str):
                yield shard, rec
        except (ValueError, KeyError, AttributeError, TypeError):
            continue


def _differences(old: dict, new: dict) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}={_shown(old.get(k))} there, {_shown(new.get(k))} asked" for k in keys)


def _shown(value) -> str:
    """A parameter as a user reads it: None (an option left out, e.g. --keep-size's size) as "not set"."""
    return "not set" if value is None else repr(value)


def _refuse_foreign(out: Path, entries: list[str], owns: Callable[[str], bool]) -> None:
    foreign = sorted(e for e in entries if not owns(e))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputDirectoryError(f"--out {out} holds files that latentds did not write ({shown}) beside its shard "
                                   "set; move them elsewhere or choose another --out (latentds never deletes or "
                                   "writes beside files it did not make)")


def _remove_set_files(out: Path, entries: list[str], owns: Callable[[str], bool]) -> None:
    """Delete the files of a shard set (and only those), manifest first: from the first deletion on, no reader
    takes the directory for a finished set."""
    mine = [e for e in entries if owns(e)]
    for name in sorted(mine, key=lambda e: e != MANIFEST):
        (out / name).unlink(missing_ok=True)


def _prepare_output(out: Path, spec, overwrite: bool) -> dict[int, dict]:
    """Make ``out`` (locked, existing) ready for ``spec``; return the records of shards already finished there,
    by shard number."""
    params = spec.params()
    existing = _existing_set(out, spec)
    entries = sorted(p.name for p in out.iterdir() if p.name != LOCK)
    if existing is None:
        if entries:
            raise OutputDirectoryError(f"--out {out} is not empty and holds no latentds shard set; "
                                       "choose a new or empty directory")
    elif existing.damage is not None:
        if not overwrite:
            raise OutputDirectoryError(f"--out {out} holds a damaged shard set: {existing.damage}; run the same "
                                       "command with --overwrite to write it again (only the set's own files are "
                                       "replaced)")
        _refuse_foreign(out, entries, existing.owns)
        _remove_set_files(out, entries, existing.owns)
    elif existing.params != params:
        if not overwrite:
            raise OutputDirectoryError(f"--out {out} holds another dataset ({_differences(existing.params, params)}); "
                                       "use --overwrite to replace it, or choose another --out")
        _refuse_foreign(out, entries, existing.owns)
        _remove_set_files(out, entries, existing.owns)
    else:
        _refuse_foreign(out, entries, existing.owns)
    for stale in out.glob(f".*{PARTIAL_SUFFIX}"):  # shards a killed run was writing (ours: checked above)
        stale.unlink(missing_ok=True)
    records = _finished_records(out, spec)
    command = getattr(spec, "command", None)
    head = {"params": params}
    if callable(command):
        head["command"] = f"{command()} --out {shlex.quote(str(out))}"
    try:
        if not (out / PROGRESS).is_file():
            with open(out / PROGRESS, "w", encoding="utf-8") as f:
                f.write(json.dumps(head) + "\n")
                f.writelines(json.dumps({"shard": i, **r}) + "\n" for i, r in sorted(records.items()))
    except OSError as e:
        (out / PROGRESS).unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputDirectoryError(write_failure(out / PROGRESS, e)) from None
        raise OutputDirectoryError(f"cannot write in --out {out}: {e.strerror}; choose a writable directory") from None
    return records


def _finished_records(out: Path, spec) -> dict[int, dict]:
    """Records of finished shards (from the manifest or the progress file) whose files are intact."""
    if (out / MANIFEST).is_file():
        candidates = list(enumerate(read_manifest(out)["shards"]))
    elif (out / PROGRESS).is_file():
        candidates = _read_progress(out)[1]  # readable: _existing_set checked it
    else:
        return {}
    ranges = spec.shard_ranges()
    kept = {}
    for shard, rec in candidates:
        if not (0 <= shard < len(ranges) and rec.get("name") == spec.shard_name(shard)):
            continue
        file = out / rec["name"]
        damaged = rec.get("damaged", [])  # source items a producer could not read (latentds pack: damaged images)
        if (isinstance(rec.get("count"), int) and isinstance(damaged, list)
                and rec["count"] + len(damaged) == len(ranges[shard]) and file.is_file()
                and file.stat().st_size == rec.get("bytes") and file_sha256(file) == rec.get("sha256")):
            kept[shard] = rec
    return kept


# --- engines ---------------------------------------------------------------------------------------------------

def _in_flight(todo: Iterable[int], limit: int, submit: Callable[[int], object],
               finished: Callable[[list], Iterable], result: Callable[[object], dict],
               pending: dict) -> Iterator[tuple[int, dict]]:
    """The loop both engines share: hand out the shards of ``todo`` so that at most ``limit`` are in flight,
    yield (shard, record) as they finish. ``submit(shard)`` starts one and returns its handle (a future, a Ray
    reference), kept in ``pending`` (handle -> shard: what the caller cleans up after an error);
    ``finished(handles)`` waits until some are done and returns those; ``result(handle)`` is its record."""
    todo = iter(todo)
    while True:
        while len(pending) < limit:
            shard = next(todo, None)
            if shard is None:
                break
            pending[submit(shard)] = shard
        if not pending:
            return
        for handle in finished(list(pending)):
            shard = pending.pop(handle)
            yield shard, result(handle)


def _run_local(write: Callable, spec, out: Path, todo: Iterable[int], workers: int,
               update: Callable[[int], None]) -> Iterator[tuple[int, dict]]:
    """Write shards in this process (workers=1) or in a pool of spawned processes, handing the pool only a few
    shards ahead of its workers. On any error or interrupt the workers are stopped at once."""
    if workers == 1:
        for shard in todo:
            yield shard, write(spec, shard, out, update)
        return
    # spawn, not fork: a forked child would share GL contexts, h5py handles and torch threads with us.
    ctx = mp.get_context("spawn")
    counts = ctx.Queue()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(counts, os.getpid()))

    def finished(futures):
        done, _ = wait(futures, timeout=0.25, return_when=FIRST_COMPLETED)
        _drain(counts, update)
        return done

    pending: dict = {}
    try:
        yield from _in_flight(todo, IN_FLIGHT_PER_WORKER * workers,
                              lambda shard: pool.submit(_worker_shard, write, spec, shard, str(out)),
                              finished, lambda future: future.result(), pending)
        _drain(counts, update)
        pool.shutdown(wait=True)
    except BaseException:
        _stop_pool(pool)
        for shard in pending.values():  # the workers are gone: what they were writing is ours to remove
            partial_name(out / spec.shard_name(shard)).unlink(missing_ok=True)
        raise


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers now (Ctrl-C, SIGTERM, an error): a worker left running would render on alone."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # private, but the only handle on them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)


def _drain(counts, update: Callable[[int], None]) -> None:
    while True:
        try:
            update(counts.get_nowait())
        except Exception:  # queue.Empty, or a closed queue after an interrupt
            return


_COUNTS = None


def _init_worker(counts, parent_pid: int) -> None:
    global _COUNTS
    _COUNTS = counts
    die_with_parent(parent_pid)  # killed with the main process (kill -9 included), never orphaned
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


def _run_ray(write: Callable, spec, out: Path, todo: Iterable[int], workers: int,
             update: Callable[[int], None]) -> Iterator[tuple[int, dict]]:
    """One Ray task per shard (a few per worker in flight); each Ray worker process keeps its own state (e.g. a
    renderer) between tasks."""
    ray = _ray_session()
    task = ray.remote(num_cpus=1)(_ray_shard)

    def result(ref):
        record = ray.get(ref)
        update(record["count"])
        return record

    pending: dict = {}
    try:
        yield from _in_flight(todo, IN_FLIGHT_PER_WORKER * workers,
                              lambda shard: task.remote(write, spec, shard, str(out.resolve())),
                              lambda refs: ray.wait(refs, num_returns=1)[0], result, pending)
    except BaseException:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise


def _ray_shard(write: Callable, spec, shard: int, out: str) -> dict:
    return write(spec, shard, Path(out), None)
