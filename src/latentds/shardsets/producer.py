"""Produce a shard set: lock and check the output directory, resume what is done, write the rest, write the
manifest.

    produce_shards(spec, out)            # spec.samples(i) gives shard i's samples; the producer writes them
    produce_shards(spec, out, write)     # or write(spec, shard, out, on_samples) -> record writes shard i

What a spec must provide (``name``, ``params()``, ``shard_ranges()``, ``shard_name(i)``, ``finish(records)``,
optionally ``command()``, and ``samples(i)`` when no ``write`` is given) is the contract written out in
latentds.shardsets.spec (``ProducibleSpec``, ``ShardWriter``); ``ShardSetSpec`` there fills most of it in, so a new
kind of shard set is one class. ``write`` is a module-level function, so that worker processes can import it; it
writes its tar with ``write_tar_shard`` (atomic, reproducible) and returns the record.

The output directory is claimed for the whole run (latentds.shardsets.claim: its lock, and a marker whose
identity is the set's parameters, removed once the set is finished: its manifest then records the parameters and
shards, and is what a later claim reads): a second producer there is refused with one line naming the first. Its
states:
- empty or new: a fresh run;
- holds a set with the same parameters (finished or in progress): resume; finished shards are checked (size and
  sha256, latentds.shardsets.set_state) and kept, the rest are written;
- holds a set with other parameters: refused unless ``overwrite``, which deletes exactly the files the claim marker
  records (manifest, card, progress file, shards, their partial files) and nothing else; a damaged manifest or
  progress file likewise needs ``overwrite``, which then writes the set again;
- holds anything else, beside a set or not: refused (we never delete, or write beside, files we did not write).

The progress file's first line holds the parameters (and the command that resumes the run); each further line
is the record of one finished shard, appended only after the shard was renamed to its final name.
``manifest.json`` is written last. Shards are planned lazily (a billion samples cost no memory before they are
written) and at most ``MAX_SHARDS`` shards make a set (its manifest lists every one); see latentds.shardsets.plan.
Shards are handed to an engine (latentds.shardsets.engines: a local process pool, or Ray tasks).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tqdm.auto import tqdm

from latentds.errors import InvalidParameterError, LatentdsError, OutputDirectoryError
from latentds.shardsets import engines
from latentds.shardsets.atomic import atomic_path, partial_name
from latentds.shardsets.claim import Claim, claim
from latentds.shardsets.manifest import MANIFEST, PROGRESS, file_sha256, write_manifest
from latentds.shardsets.marker import Series
from latentds.shardsets.set_state import SET_FILES, DamagedSet, finished_records, set_marker
from latentds.shardsets.spec import ShardWriter, spec_problems
from latentds.shardsets.tarwriter import ShardTarWriter

PARTIAL_SUFFIX = partial_name("shard.tar").suffix  # ".partial" (latentds.shardsets.atomic)
ENGINES = engines.ENGINES
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
    if engine not in engines.ENGINES:
        raise InvalidParameterError(f"unknown engine {engine!r}; choose one of: {', '.join(engines.ENGINES)}")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise InvalidParameterError(f"--workers must be at least 1 (got {workers})")
    out = Path(out)
    ranges = spec.shard_ranges()
    with _claim_output(out, spec, overwrite) as taken:  # one writer per --out; the lock is released on leaving
        done = _prepare_output(out, spec, taken, overwrite)
        n_shards = len(ranges)
        total = getattr(ranges, "total", None)
        total = sum(len(r) for r in ranges) if total is None else total
        initial = sum(len(ranges[i]) for i in done)
        start = time.perf_counter()
        if len(done) < n_shards:
            (out / MANIFEST).unlink(missing_ok=True)  # a finished set that lost a shard is unfinished until mended
            if engine == "ray":
                workers = int(engines.ray_session().cluster_resources().get("CPU", 1))
            workers = min(workers, n_shards - len(done))
            with tqdm(total=total, initial=initial, unit="img", smoothing=0.05, desc=f"{verb} {spec.name}",
                      disable=not progress, dynamic_ncols=True) as bar:
                runner = engines.run_ray if engine == "ray" else engines.run_local
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
        taken.finish()  # a finished set is its shards, manifest and card: the manifest now says what it holds
    return ShardReport(manifest, out, wrote, seconds, workers if wrote else 0, verb)


def restart_message(left: int) -> str:
    """What is said when a pool is started again after a worker died (``left``: shards not yet finished, those
    finished before a resume included)."""
    return f"a worker process died; restarting the pool for the {left:,} shard{'s' * (left != 1)} left"


# --- the output directory ----------------------------------------------------------------------------------------

def _claim_output(out: Path, spec, overwrite: bool) -> Claim:
    """Claim ``out`` for ``spec``'s set (latentds.shardsets.claim): the marker's identity is the set's parameters,
    its files the manifest, card, progress file and the shards (a numbered series, however many); files latentds
    did not write beside them are refused, and ``overwrite`` removes another set's own files and nothing else."""
    params = spec.params()
    purpose = str(params.get("generator", "latentds.write")).rpartition(".")[2]
    n_shards = len(spec.shard_ranges())
    series = Series.of(spec.shard_name, n_shards)
    files = SET_FILES + (() if series else tuple(spec.shard_name(i) for i in range(n_shards)))

    def mismatch(found) -> str:
        old = found.identity if isinstance(found.identity, dict) else {}
        return (f"--out {out} holds another dataset ({_differences(old, params)}); use --overwrite to replace it, "
                "or choose another --out")

    return claim(out, "shards", params, overwrite=overwrite, files=files, series=(series,) if series else (),
                 exclusive=True, purpose=purpose, recognise=lambda: set_marker(out, spec), mismatch=mismatch)


def _differences(old: dict, new: dict) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}={_shown(old.get(k))} there, {_shown(new.get(k))} asked" for k in keys)


def _shown(value) -> str:
    """A parameter as a user reads it: None (an option left out, e.g. --keep-size's size) as "not set"."""
    return "not set" if value is None else repr(value)


def _prepare_output(out: Path, spec, taken: Claim, overwrite: bool) -> dict[int, dict]:
    """Make the claimed ``out`` ready for ``spec``; return the records of shards already finished there, by shard
    number (a damaged manifest or progress file needs ``overwrite``, which writes the set again)."""
    try:
        records = finished_records(out, spec)
    except DamagedSet as e:
        if not overwrite:
            raise OutputDirectoryError(f"--out {out} holds a damaged shard set: {e}; run the same command with "
                                       "--overwrite to write it again (only the set's own files are replaced)"
                                       ) from None
        taken.overwrite()
        records = {}
    for stale in out.glob(f".*{PARTIAL_SUFFIX}"):  # shards a killed run was writing
        if taken.marker.owns(stale.name):
            stale.unlink(missing_ok=True)
    command = getattr(spec, "command", None)
    head = {"params": spec.params()}
    if callable(command):
        head["command"] = f"{command()} --out {shlex.quote(str(out))}"
    try:
        if not (out / PROGRESS).is_file():
            with open(out / PROGRESS, "w", encoding="utf-8") as f:
                f.write(json.dumps(head) + "\n")
                f.writelines(json.dumps({"shard": i, **r}) + "\n" for i, r in sorted(records.items()))
    except OSError as e:
        (out / PROGRESS).unlink(missing_ok=True)
        taken.finish()  # a finished set is its shards, manifest and card: the manifest now says what it holds
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputDirectoryError(write_failure(out / PROGRESS, e)) from None
        raise OutputDirectoryError(f"cannot write in --out {out}: {e.strerror}; choose a writable directory") from None
    return records
