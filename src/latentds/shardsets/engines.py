"""The producer's engines: how shards are handed to workers and their records collected (latentds.shardsets.
producer decides which shards are written and records them).

    for shard, record in run_local(write, spec, out, todo, workers, update): ...   # spawned processes (or this one)
    for shard, record in run_ray(write, spec, out, todo, workers, update): ...     # one Ray task per shard

Both hand out a few shards per worker ahead (``in_flight``); on any error or interrupt the local engine stops its
workers at once and removes the partial files they were writing, the Ray engine cancels its tasks. Workers die with
the main process (latentds.shardsets.processes).
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterable, Iterator

from latentds.errors import InvalidParameterError
from latentds.shardsets.atomic import partial_name
from latentds.shardsets.processes import die_with_parent

ENGINES = ("local", "ray")
IN_FLIGHT_PER_WORKER = 2  # shards handed to the pool ahead of the workers (the rest wait, unplanned)


def in_flight(todo: Iterable[int], limit: int, submit: Callable[[int], object],
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


def run_local(write: Callable, spec, out: Path, todo: Iterable[int], workers: int,
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
        yield from in_flight(todo, IN_FLIGHT_PER_WORKER * workers,
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


def ray_session():
    """The ray module, connected: to the cluster named by RAY_ADDRESS, or to a local one it starts."""
    try:
        import ray  # noqa: PLC0415
    except ImportError:
        raise InvalidParameterError("engine 'ray' needs Ray: pip install 'latentds[ray]'") from None
    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    return ray


def run_ray(write: Callable, spec, out: Path, todo: Iterable[int], workers: int,
             update: Callable[[int], None]) -> Iterator[tuple[int, dict]]:
    """One Ray task per shard (a few per worker in flight); each Ray worker process keeps its own state (e.g. a
    renderer) between tasks."""
    ray = ray_session()
    task = ray.remote(num_cpus=1)(_ray_shard)

    def result(ref):
        record = ray.get(ref)
        update(record["count"])
        return record

    pending: dict = {}
    try:
        yield from in_flight(todo, IN_FLIGHT_PER_WORKER * workers,
                              lambda shard: task.remote(write, spec, shard, str(out.resolve())),
                              lambda refs: ray.wait(refs, num_returns=1)[0], result, pending)
    except BaseException:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise


def _ray_shard(write: Callable, spec, shard: int, out: str) -> dict:
    return write(spec, shard, Path(out), None)
