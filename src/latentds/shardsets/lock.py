"""One writer per directory: the lock that every claim of an output directory takes (latentds.shardsets.claim:
``latentds render``, ``pack``, ``train``, ``analyze``, ``study``), so that a second process is refused instead of
deleting the first one's files.

    from latentds.shardsets.lock import DirectoryLock
    with DirectoryLock("data/phi", purpose="render"):
        ...   # meanwhile DirectoryLock("data/phi", ...) in any other process raises DirectoryBusyError, one line
              # naming the holder: pid, host, command, since when

How. ``DIR/.latentds-lock`` is locked with flock(2) and holds who has it (JSON: pid, host, purpose, command,
started). The kernel drops an flock when the process holding it dies, however it dies (kill -9 included), so a
lock file left behind by a dead process is simply taken over: nothing guesses from pids. Where the file system
has no flock (ENOLCK, EOPNOTSUPP), the recorded pid decides instead: a lock whose process is gone from this host
is taken over. Taking the lock again in the process that holds it nests (it is released by the outermost release).
A forked child (a DataLoader worker) closes its copy of the descriptor at once, so it never keeps a lock alive.
The file is removed when the lock is released. A symlink (or anything but a regular file) in its place is refused
with one line, never opened through: its target is never touched.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path

from latentds.errors import DirectoryBusyError, OutputDirectoryError

LOCK = ".latentds-lock"
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a symlink planted as the lock file is refused, never written through

try:
    import fcntl
except ImportError:  # not POSIX: only the pid check
    fcntl = None

# Locks held by this process: resolved directory -> [fd, depth]. Read by the after-fork hook below.
_HELD: dict[str, list] = {}


def _close_in_child() -> None:
    for fd, _depth in _HELD.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class DirectoryLock:
    """The lock on ``directory`` (created if missing). ``purpose``: what the holder does there ("render", "pack",
    "train", "analyze"); ``command``: how it was started (default: this process's command line).

    ``acquire()`` returns self or raises DirectoryBusyError (another live process holds it) or
    OutputDirectoryError (the directory cannot be created or written). Use it as a context manager.
    """

    def __init__(self, directory: str | os.PathLike, purpose: str, command: str | None = None):
        self.directory = Path(directory)
        self.purpose = purpose
        self.command = command if command is not None else _command_line()
        self.path = self.directory / LOCK
        self._key: str | None = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._key is not None

    def acquire(self) -> DirectoryLock:
        if self._key is not None:
            return self
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            key = str(self.directory.resolve())
        except OSError as e:
            raise OutputDirectoryError(f"cannot create {self.directory}: {e.strerror}; choose a writable "
                                       "directory") from None
        if key in _HELD:  # this process holds it already: nest
            _HELD[key][1] += 1
            self._key = key
            return self
        while True:
            fd = self._open()
            try:
                if not self._lock(fd):
                    holder = _read_holder(fd)
                    raise DirectoryBusyError(f"{self.directory} is in use by another latentds process: "
                                             f"{describe_holder(holder)}. Wait for it to finish or stop it (a lock "
                                             "left by a process that died is taken over)")
                try:
                    same = os.fstat(fd).st_ino == os.lstat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # the holder released (and removed) it between our open and our lock: again
                    os.close(fd)
                    continue
                record = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                          "command": self.command,
                          "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
                try:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
                except OSError as e:  # a full disk
                    raise OutputDirectoryError(f"cannot write the lock file {self.path}: {e.strerror}") from None
            except BaseException:
                os.close(fd)
                raise
            _HELD[key] = [fd, 1]
            self._key = key
            return self

    def _open(self) -> int:
        """The lock file, opened without following a symlink (whose target, a user's file, would be truncated and
        overwritten) and only if it is a regular file; OutputDirectoryError otherwise, touching nothing."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP or os.path.islink(self.path):
                raise OutputDirectoryError(f"{self.path} is a symbolic link, not the lock file latentds writes; "
                                           "remove it (latentds never writes through it)") from None
            raise OutputDirectoryError(f"cannot write in {self.directory}: {e.strerror}; choose a writable "
                                       "directory") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OutputDirectoryError(f"{self.path} is not a regular file, not the lock file latentds writes; "
                                       "remove it")
        os.set_blocking(fd, True)
        return fd

    def _lock(self, fd: int) -> bool:
        """Take the OS lock on ``fd``: True if taken, False if another process holds it."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError as e:
                if e.errno not in _UNSUPPORTED:
                    raise
        holder = _read_holder(fd, retries=0)  # no flock here: trust the record if its process is alive
        return not (holder and holder.get("pid") != os.getpid() and _alive(holder))

    def release(self) -> None:
        key, self._key = self._key, None
        if key is None or key not in _HELD:
            return
        _HELD[key][1] -= 1
        if _HELD[key][1] > 0:
            return
        fd = _HELD.pop(key)[0]
        try:
            self.path.unlink(missing_ok=True)  # while still locked: a waiting process then finds a fresh file
        except OSError:
            pass
        os.close(fd)


def describe_holder(holder: dict | None) -> str:
    """One line about a lock record: "render, pid 123 on host h since 2025-01-01T10:00:00+00:00: latentds ..."."""
    if not holder:
        return "details unknown (the lock file is empty)"
    return (f"{holder.get('purpose', '?')}, pid {holder.get('pid', '?')} on {holder.get('host', '?')} since "
            f"{holder.get('started', '?')}: {holder.get('command', '?')}")


def read_holder(directory: str | os.PathLike) -> dict | None:
    """The record of the lock file in ``directory`` (who holds or last held it), or None; it does not say whether
    the lock is held now."""
    try:
        fd = os.open(Path(directory) / LOCK, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    try:
        return _read_holder(fd, retries=0)
    finally:
        os.close(fd)


def _read_holder(fd: int, retries: int = 20) -> dict | None:
    # The holder writes its record just after taking the lock: an empty file may be a moment early.
    for attempt in range(retries + 1):
        try:
            data = os.pread(fd, 1 << 16, 0)
            if data.strip():
                holder = json.loads(data)
                return holder if isinstance(holder, dict) else None
        except (OSError, ValueError, RecursionError):
            pass
        if attempt < retries:
            time.sleep(0.05)
    return None


def _alive(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # cannot tell for another host: assume it is
    try:
        os.kill(int(holder["pid"]), 0)
    except (KeyError, TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _command_line() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("__main__.py", "/latentds")):
        argv[0] = "latentds"
    return " ".join(argv)
