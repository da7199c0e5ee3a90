"""Encoders for the members of a sample: no timestamps or other varying bytes, so equal inputs give equal bytes.
(Reading PNG members back safely: ``shardsets/png.py``.)"""

from __future__ import annotations

import io
import json
import re

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
