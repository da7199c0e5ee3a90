"""Reading WebDataset samples from a tar stream, fast, and past damaged headers.

Kept hand-written because it is measured: ~6 µs a sample against ~120 µs for ``tarfile`` in streaming mode
(webdataset's reader), 20x, and reading tars is most of the cost of streaming small images.
"""

from __future__ import annotations

import tarfile
from typing import Callable, Iterator


def tar_samples(stream, url: str, on_damage: Callable[[int, str], None] | None = None) -> Iterator[dict]:
    """WebDataset samples of an (uncompressed) tar stream: consecutive members sharing a key (the name up to
    the first dot of its base name) grouped into {"__key__", "__url__", ext: bytes}.

    A small ustar/pax/GNU reader of our own: Python's ``tarfile`` in streaming mode (what webdataset uses)
    costs ~120 us per sample here, this ~6 us, and reading tars is most of the cost of streaming small images.
    Headers are checksummed; a short read raises ``tarfile.ReadError``. A header that fails its checksum raises
    ``tarfile.ReadError`` too, unless ``on_damage`` is given: then ``on_damage(offset, reason)`` is called and
    the reader skips ahead, block by block, to the next sound ustar header, so that a damaged header costs only
    the member it described (its sample comes out without that member) instead of the rest of the shard.
    """
    sample, pending_name, pending_size = None, None, None
    offset = 0  # of the next block
    while True:
        header = stream.read(512)
        offset += len(header)
        if len(header) < 512 or header == _ZERO_BLOCK:
            if len(header) and header != _ZERO_BLOCK:
                raise tarfile.ReadError(f"unexpected end of data in {url}")
            break
        if not _sound(header):
            if on_damage is None:
                raise tarfile.ReadError(f"bad header checksum in {url}")
            on_damage(offset - 512, "a damaged tar header")
            header, skipped = _next_header(stream)
            offset += skipped
            pending_name, pending_size = None, None  # a pax/GNU header before the damage no longer applies
            if header is None:
                break
        kind = header[156:157]
        size = pending_size if pending_size is not None else int(header[124:136].strip(b"\0 ") or b"0", 8)
        data = stream.read(size)
        if len(data) < size:
            raise tarfile.ReadError(f"unexpected end of data in {url}")
        offset += size + len(stream.read(-size % 512))
        if kind in (b"x", b"g"):  # pax extended header: may carry the next member's path and size
            fields = dict(_pax_records(data, url))
            pending_name = fields.get("path", pending_name)
            pending_size = _pax_size(fields["size"], url) if "size" in fields else None
            continue
        if kind == b"L":  # GNU long name
            pending_name = data.rstrip(b"\0").decode()
            continue
        name = pending_name or (header[345:500].rstrip(b"\0") + b"/" * bool(header[345]) +
                                header[:100].rstrip(b"\0")).decode()
        pending_name, pending_size = None, None
        if kind not in (b"0", b"\0") or "/__" in "/" + name:  # directories, links, webdataset's meta members
            continue
        directory, _, base = name.rpartition("/")
        stem, _, ext = base.partition(".")
        key = f"{directory}/{stem}" if directory else stem
        if sample is None or sample["__key__"] != key:
            if sample is not None:
                yield sample
            sample = {"__key__": key, "__url__": url}
        sample[ext.lower()] = data
    if sample is not None:
        yield sample


_ZERO_BLOCK = bytes(512)


def _sound(header: bytes) -> bool:
    try:
        stored = int(header[148:156].strip(b"\0 ") or b"-1", 8)
    except ValueError:
        return False
    return sum(header[:148]) + 256 + sum(header[156:]) == stored


def _next_header(stream) -> tuple[bytes | None, int]:
    """The next block that is a sound ustar header (None at the end of the stream), and the bytes read."""
    read = 0
    while True:
        block = stream.read(512)
        read += len(block)
        if len(block) < 512:
            return None, read
        # Zero blocks are skipped, not taken for the end: member data (a depth map) can hold them.
        if block[257:262] == b"ustar" and _sound(block):
            return block, read


def _pax_records(data: bytes, url: str = "") -> Iterator[tuple[str, str]]:
    """The "LENGTH KEY=VALUE\\n" records of a pax header. Each must move forward (a record of length 0 looped
    forever) and end inside the header with a newline; else ``tarfile.ReadError``, as any damaged header."""
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 21)
        digits = data[pos:space] if space > pos else b""
        length = int(digits) if digits.isdigit() else 0
        end = pos + length
        key, equals, value = data[space + 1: end - 1].partition(b"=") if length > 0 else (b"", b"", b"")
        if not key or not equals or end > len(data) or data[end - 1:end] != b"\n":
            raise tarfile.ReadError(f"a malformed pax header record at byte {pos} of its header in {url}")
        yield key.decode(), value.decode()
        pos = end


def _pax_size(text: str, url: str) -> int:
    """A pax "size" field: decimal digits only (a negative or absurd size is a damaged header)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 15):
        raise tarfile.ReadError(f"a malformed pax size {text[:20]!r} in {url}")
    return int(text)
