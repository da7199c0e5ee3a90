"""Claiming an output directory: the one policy for "is this directory mine?" that render, pack, train, analyze
and study share.

    with claim(out, "train", identity, resume=resume, files=RUN_FILES) as run:
        run.state          # "new", "resumed" or "overwritten"
        run.found          # the Marker the directory held (None for a new one)
        run.wrote("extra.json")    # record a file this run writes beyond the declared ones
        run.overwrite()    # remove what the marker records (never anything else) and start afresh
        run.remove_written()   # a failed fresh run: remove what this run wrote, release, remove the directory if
                               # the claim made it and it is empty

``claim`` creates the directory if needed, takes its lock (latentds.shardsets.lock: a second process is refused
with one line naming the holder), reads its marker (latentds.shardsets.marker; a directory without one is recognised by
``recognise()``, the kind's own reader: a finished shard set by its manifest, output of a version before the
marker by its files), and decides, each refusal one line naming what
to do (an OutputDirectoryError, exit 2 from the CLI):
- no marker: the directory must be empty (the lock file aside): a new claim, the marker written at once;
  ``resume=True`` is refused ("nothing to resume");
- a marker of another kind: refused, even with ``overwrite``;
- the same kind: ``resume=False`` is refused ("already holds ... add --resume"); an identity that differs is
  refused (``mismatch(found)`` words it), or with ``overwrite`` the old files are removed; otherwise resumed;
- ``exclusive`` (a shard set): files the marker does not record, beside it, refuse a resume or an overwrite.
The ground rule: latentds removes only names its marker records (and their ``.NAME.partial`` files), never a file
it did not write. See ARCHITECTURE.md, "Outputs, locks and processes".
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable

from latentds import __version__
from latentds.errors import OutputDirectoryError
from latentds.shardsets.atomic import partial_name
from latentds.shardsets.lock import LOCK, DirectoryLock
from latentds.shardsets.marker import MARKER, Marker, Series, read_marker, write_marker

# What a directory of each kind holds, in the words of the messages; the hint a refused resume=False adds.
KINDS = {"shards": "latentds shard set", "train": "training run", "analyze": "latentds analysis", "study": "study"}
RESUME_HINTS = {"train": " (a run stopped before its first checkpoint starts again)"}


def claim(path: str | os.PathLike, kind: str, identity=None, *, version: str = __version__,
          resume: bool | None = None, overwrite: bool = False, files: Iterable[str] = (),
          series: Iterable[Series] = (), exclusive: bool = False, purpose: str | None = None,
          recognise: Callable[[], Marker | None] | None = None,
          mismatch: Callable[[Marker], str] | None = None) -> Claim:
    """Claim ``path`` for a run of ``kind`` (see the module docstring); return the Claim, which holds the lock.

    ``identity``: JSON that must match the marker's for the run to continue there (None: any run of the kind);
    ``resume``: None continues a matching claim, True requires one, False refuses one; ``files`` and ``series``:
    what this run writes there, recorded in the marker; ``purpose``: the lock's word for the holder (default
    ``kind``: "render" for a shard set)."""
    path = Path(path)
    created = not os.path.lexists(path)
    if not created and not path.is_dir():
        raise OutputDirectoryError(f"--out {path} is a file, not a directory; choose a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputDirectoryError(f"cannot write to --out {path} (cannot create --out: {e.strerror or e}); choose a "
                                   "writable directory") from None
    try:
        lock = DirectoryLock(path, purpose=purpose or kind).acquire()
    except BaseException:
        _remove_if_empty(path, created)
        raise
    taken = Claim(path, kind, lock, created, purpose or kind)
    try:
        taken._decide(_normal(identity), version, resume, overwrite, tuple(files), tuple(series), exclusive, recognise,
                      mismatch)
    except BaseException:
        taken.release()
        _remove_if_empty(path, created)
        raise
    return taken


class Claim:
    """A claimed output directory: holds its lock and its marker (see ``claim``)."""

    def __init__(self, path: Path, kind: str, lock: DirectoryLock, created: bool, purpose: str):
        self.path, self.kind, self.created, self.purpose = path, kind, created, purpose
        self._lock = lock
        self.found: Marker | None = None
        self.marker: Marker | None = None
        self.state = "new"
        self.written: list[str] = []  # what this run wrote (removed by remove_written)
        self._fresh: Marker | None = None  # the marker of this run, written when it starts afresh

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def what(self) -> str:
        return KINDS.get(self.kind, f"latentds {self.kind}")

    def _decide(self, identity, version, resume, overwrite, files, series, exclusive, recognise, mismatch) -> None:
        entries = sorted(p.name for p in self.path.iterdir() if p.name != LOCK)
        damage = None
        try:
            found = read_marker(self.path)
        except ValueError as e:
            found, damage = None, str(e)
        if found is None and recognise is not None:
            found = recognise()
        self.found = found
        self._fresh = fresh = Marker(self.kind, identity, version, files, series)
        if found is None:
            if damage is not None:
                raise OutputDirectoryError(f"{self.path / MARKER} is damaged ({damage[:100]}), so latentds cannot "
                                           f"tell which files in --out {self.path} it wrote; choose another --out")
            if resume:
                raise OutputDirectoryError(f"nothing to resume in {self.path}: it holds no {self.what}; drop --resume")
            others = [e for e in entries if e not in (MARKER, partial_name(MARKER).name)]
            if others:
                raise OutputDirectoryError(f"--out {self.path} is not empty and holds no {self.what}: it holds files "
                                           f"latentds {self.purpose} did not write ({_shown(others, 3)}); choose a "
                                           "new or empty directory")
            self._start(fresh)
            return
        if found.kind != self.kind:
            raise OutputDirectoryError(f"--out {self.path} holds a {KINDS.get(found.kind, found.kind)} (latentds "
                                       f"{found.kind}), not a {self.what}; choose another --out")
        if resume is False:
            raise OutputDirectoryError(f"{self.path} already holds a {self.what}; add --resume to continue it"
                                       f"{RESUME_HINTS.get(self.kind, '')}, or choose another --out")
        differs = identity is not None and found.identity != identity
        if differs and not overwrite:
            raise OutputDirectoryError(mismatch(found) if mismatch else
                                       f"--out {self.path} holds another {self.what}; choose another --out")
        if exclusive:
            self.refuse_foreign(entries)
        if differs:
            self.overwrite()
            return
        self.state = "resumed"
        self.marker = Marker(self.kind, identity if identity is not None else found.identity,
                             found.version or version, found.files, found.series or series).with_files(files)
        write_marker(self.path, self.marker)

    def _start(self, marker: Marker) -> None:
        self.marker = marker
        self.written = list(marker.files)
        write_marker(self.path, marker)

    def refuse_foreign(self, entries: list[str] | None = None) -> None:
        """OutputDirectoryError when the directory holds files its marker does not record."""
        if entries is None:
            entries = sorted(p.name for p in self.path.iterdir() if p.name != LOCK)
        owner = self.found or self.marker
        foreign = [e for e in entries if not owner.owns(e)]
        if foreign:
            raise OutputDirectoryError(f"--out {self.path} holds files that latentds did not write ("
                                       f"{_shown(foreign, 5)}) beside its {KINDS.get(owner.kind, owner.kind)}; move "
                                       "them elsewhere or choose another --out (latentds never deletes or writes "
                                       "beside files it did not make)")

    def overwrite(self) -> None:
        """Remove every file the directory's marker records (in its recorded order, then the numbered ones) and
        nothing else, and claim it afresh."""
        old = self.found or self.marker
        if old is not None:
            _remove(self.path, old)
        self.state = "overwritten"
        self.found = None
        self._start(self._fresh)

    def finish(self) -> None:
        """The run is complete and the directory's own record now says what it holds (a shard set's manifest, which
        ``recognise`` reads): remove the marker, so that a finished set is only its shards, manifest and card."""
        for name in (MARKER, partial_name(MARKER).name):
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()

    def wrote(self, *names: str) -> None:
        """Record files this run wrote (or is about to write) in the marker."""
        self.written += [n for n in names if n not in self.written]
        self.marker = self.marker.with_files(names)
        write_marker(self.path, self.marker)

    def remove_written(self) -> None:
        """Remove what this run wrote (and, for a claim that started afresh, the marker), release the lock, and
        remove the directory if the claim made it and nothing else is in it. Files this run did not write stay."""
        if self.written:
            _remove(self.path, Marker(self.kind, files=tuple(self.written)))
        if self.state != "resumed":
            for name in (MARKER, partial_name(MARKER).name):
                with contextlib.suppress(OSError):
                    (self.path / name).unlink()
        self.release()
        _remove_if_empty(self.path, self.created)

    def release(self) -> None:
        self._lock.release()


def record(directory: str | os.PathLike, kind: str, files: Iterable[str]) -> None:
    """Record ``files`` in the marker of ``directory`` when it is of ``kind``, or write one where there is none
    (a writer that is not a whole run, e.g. a latents cache saved on its own); a directory another kind claimed,
    or whose marker is damaged, is left as it is."""
    directory = Path(directory)
    try:
        found = read_marker(directory)
    except ValueError:
        return
    if found is None:
        found = Marker(kind, None, __version__)
    if found.kind == kind:
        write_marker(directory, found.with_files(files))


def _remove(path: Path, marker: Marker) -> None:
    """Remove the entries of ``path`` that ``marker`` owns (never the marker or the lock): recorded names first, in
    their recorded order (a shard set's manifest before its shards), then the rest."""
    order = {name.rstrip("/"): i for i, name in enumerate(marker.files)}
    entries = [p.name for p in path.iterdir() if p.name not in (LOCK, MARKER) and marker.owns(p.name)]
    for name in sorted(entries, key=lambda e: (order.get(e, len(order)), e)):
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()


def _remove_if_empty(path: Path, created: bool) -> None:
    if created:
        with contextlib.suppress(OSError):
            path.rmdir()


def _normal(identity):
    """``identity`` as it reads back from the marker's JSON (tuples as lists), so the two compare."""
    return None if identity is None else json.loads(json.dumps(identity, sort_keys=True, default=str))


def _shown(names: list[str], limit: int) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
