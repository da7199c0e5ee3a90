"""Encoders for the members of a sample: no timestamps or other varying bytes, so equal inputs give equal bytes."""

from __future__ import annotations

import io
import json

import numpy as np
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


def encode_json(labels: dict) -> bytes:
    return json.dumps(labels, sort_keys=True, separators=(",", ":")).encode()
