"""Worker processes that never outlive their parent, and SIGTERM handled like Ctrl-C.

    pool = ProcessPoolExecutor(..., initializer=DieWithParent())          # render and pack workers
    loader = DataLoader(ds, num_workers=2, worker_init_fn=DieWithParent(quiet_worker))   # training data workers
    with stop_on_signals():      # SIGTERM / SIGHUP raise Terminated (a KeyboardInterrupt) in the main thread
        ...

A worker whose parent is killed (kill -9, the OOM killer) would otherwise carry on alone, then block forever on a
queue nobody reads, holding its memory. ``DieWithParent`` (called in the worker) asks Linux to SIGKILL the worker
when its parent dies (``prctl(PR_SET_PDEATHSIG)``); where that is not available it starts a watchdog thread that
checks the parent pid once a second. Linux's signal is tied to the *thread* that started the worker: start
workers from a thread that lives as long as they should (the main thread, as DataLoader and our pools do).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
WATCHDOG_SECONDS = 1.0


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so that everything unwinds as after Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum  # what a shell reports for a process killed by that signal


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> str:
    """Make this process die (``sig``) when process ``parent_pid``, its parent, dies. Returns how: "prctl" or
    "watchdog". Exits at once if the parent is already gone."""
    how = "watchdog"
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0:
                how = "prctl"
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # died before the prctl call took effect
        os.kill(os.getpid(), sig)
    if how == "watchdog":
        threading.Thread(target=_watch_parent, args=(parent_pid, sig), name="latentds-parent-watchdog",
                         daemon=True).start()
    return how


def _watch_parent(parent_pid: int, sig: int) -> None:
    while True:
        time.sleep(WATCHDOG_SECONDS)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), sig)


class DieWithParent:
    """A picklable initializer (``ProcessPoolExecutor(initializer=...)``, ``DataLoader(worker_init_fn=...)``):
    created in the parent, it records the parent's pid; called in the worker, it makes the worker die with the
    parent, then calls ``then(*args)`` if given (e.g. your own worker_init_fn)."""

    def __init__(self, then=None):
        self.parent_pid = os.getpid()
        self.then = then

    def __call__(self, *args):
        die_with_parent(self.parent_pid)
        if self.then is not None:
            return self.then(*args)
        return None


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def _raise_on(signals) -> dict:
    """Make each of ``signals`` raise ``Terminated`` in the main thread; return the handlers they had."""
    previous = {}
    for s in signals:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            previous[s] = signal.signal(s, _raise_terminated)
    return previous


def _exit_quietly(signum, frame):
    os._exit(0)


def quiet_worker(*_args) -> None:
    """In a DataLoader worker (``DieWithParent(then=quiet_worker)``): SIGTERM and SIGHUP end the worker at once
    with exit code 0, and Ctrl-C (SIGINT) is left to the main process, which stops its workers as it unwinds.

    A worker that took SIGTERM as Ctrl-C (as this function once did) ended its loop, then waited at exit for its
    queue's feeder thread to flush batches nobody reads: the main process, stopped by ``kill PID``, hung forever
    in multiprocessing's exit join (its ``terminate()`` was swallowed the same way), and a Ctrl-C to the whole
    group printed that join's traceback beside the resume hint. Exit code 0 (not death by the signal) keeps the
    main process from reporting a "worker killed by signal" when a whole process group is stopped."""
    for s in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            signal.signal(s, _exit_quietly)
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGTERM, signal.SIGHUP)):
    """Within the block, SIGTERM and SIGHUP raise ``Terminated`` (a KeyboardInterrupt carrying ``exit_code``)
    in the main thread, so cleanup runs as it does after Ctrl-C. Does nothing outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = _raise_on(signals)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
