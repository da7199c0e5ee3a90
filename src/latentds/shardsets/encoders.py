"""Encoders for the members of a sample: no timestamps or other varying bytes, so equal inputs give equal bytes;
and ``png_is_plain``, the check a PNG member passes before torchvision's (crash-prone) decoder may see it."""

from __future__ import annotations

import io
import json
import re
import struct
import zlib

import numpy as np
import orjson
from PIL import Image


def encode_png(array: np.ndarray) -> bytes:
    """uint8 (H, W, 3) RGB or (H, W) greyscale -> PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def encode_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


# Where orjson may write other bytes than json.dumps: an exponent (Python's repr switches to one below 1e-4 and from
# 1e16, orjson elsewhere: "e" then a digit or "-"), a tiny float written out ("0.0000"), DEL or non-ASCII characters
# (json.dumps escapes them). Found anywhere, even inside a string, it only sends the labels the slow way.
_EXPONENT = re.compile(rb"e[-+0-9]").search  # 0.6 µs on a render's labels (a scan for "e" then a check)


def encode_json(labels: dict) -> bytes:
    """``json.dumps(labels, sort_keys=True, separators=(",", ":"))`` as bytes, byte for byte, except that NaN and
    infinities are written as ``null`` (json.dumps writes ``NaN``, which is not JSON: load_shards' parser refuses it).

    orjson writes the same bytes for plain labels in ~9 µs instead of ~40; where it might write others (see
    ``_EXPONENT``; a value it refuses) json.dumps writes them (tests/test_encoders.py compares the two on
    hundreds of thousands of floats of every magnitude, special values and every ASCII character).
    """
    try:
        out = orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        out = None
    if (out is None or not out.isascii() or b"\x7f" in out or b"0.0000" in out
            or _EXPONENT(out)):
        try:
            return json.dumps(labels, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
        except ValueError:  # NaN or an infinity: null, as orjson writes them
            return json.dumps(_finite(labels), sort_keys=True, separators=(",", ":")).encode()
    return out


def _finite(value):
    """``value`` with NaN and infinities replaced by None (dicts, lists and tuples walked)."""
    if isinstance(value, float):
        return value if value - value == 0.0 else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# --- checking PNG members before a native decoder sees them -----------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # grey, RGB, grey + alpha, RGBA (palette images go the careful way)
_CHUNK_HEAD = struct.Struct(">I4s").unpack_from
_U32 = struct.Struct(">I").unpack_from
_IHDR = struct.Struct(">IIBBBBB").unpack_from
MAX_PNG_SIDE = 1_000_000  # libpng's default limit
MAX_PLAIN_BYTES = 1 << 26  # larger images (over 64 MiB of pixels) go to PIL, whose decompression-bomb guard applies


def png_is_plain(data: bytes) -> bool:
    """True only for a PNG that libpng decodes without any error: IHDR, IDAT..., IEND and nothing else, 8 bits
    per channel, not interlaced, every chunk CRC right, the image data a complete zlib stream (checksum included)
    of exactly the size the header implies, every row filter valid.

    Why: torchvision's PNG decoder (libpng) crashes the whole process on any libpng error instead of raising
    (DEPENDENCIES.md), so it may only see bytes that cannot cause one. Everything else, damaged or merely unusual
    (palettes, 16 bits, text chunks), goes to PIL, which raises cleanly on damage. About 20 us of CPU for a
    64x64 RGB image, mostly the inflate (measured in the whole loader: ~8% more CPU per image).
    """
    if data[:8] != _PNG_SIGNATURE:
        return False
    view = memoryview(data)
    pos, end, idat, ihdr = 8, len(data), [], None
    while True:
        if pos + 12 > end:
            return False
        length, kind = _CHUNK_HEAD(data, pos)
        stop = pos + 8 + length
        if stop + 4 > end or zlib.crc32(view[pos + 4:stop]) != _U32(data, stop)[0]:
            return False
        if ihdr is None:
            if kind != b"IHDR" or length != 13:
                return False
            ihdr = _IHDR(data, pos + 8)
        elif kind == b"IDAT":
            idat.append(view[pos + 8:stop])
        elif kind == b"IEND" and length == 0:
            break
        else:
            return False
        pos = stop + 4
    width, height, depth, colour, compression, filtering, interlace = ihdr
    if (stop + 4 != end or depth != 8 or colour not in _CHANNELS or compression or filtering or interlace
            or not 0 < width <= MAX_PNG_SIDE or not 0 < height <= MAX_PNG_SIDE or not idat):
        return False
    stride = 1 + width * _CHANNELS[colour]
    size = stride * height
    if size > MAX_PLAIN_BYTES:
        return False
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(idat[0] if len(idat) == 1 else b"".join(idat), size + 1)
    except zlib.error:
        return False
    return len(raw) == size and inflate.eof and not inflate.unused_data and max(raw[::stride]) <= 4
