"""The one way latentds writes a file a reader must never see half-written: a temporary name, then a rename.

    with atomic_path(out / "model.safetensors") as tmp:   # tmp = out/.model.safetensors.partial
        save_file(tensors, tmp)                           # anything that writes to a path
    write_atomic(out / "manifest.json", text)             # str or bytes

The temporary file sits beside the target (same filesystem, so ``os.replace`` is atomic) under a dot-name that
ends in ``.partial``; it is flushed to disk before the rename when ``fsync`` is set (the default for text and
bytes), and removed if the write fails or is interrupted, so a failure leaves the old file (or none) in place.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def default_mode(path: str | os.PathLike) -> None:
    """Give ``path`` the mode a plain ``open`` would (0o666 less the umask): safetensors creates its files 0o600,
    which hid weights and latents from colleagues sharing a server."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def partial_name(path: str | os.PathLike) -> Path:
    """The temporary name a file is written under before it is renamed to ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit rename it to ``path``, else remove it."""
    path = Path(path)
    tmp = partial_name(path)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary name; return ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    return path
