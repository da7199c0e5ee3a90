"""Render one shard: its samples -> PNG/JSON(/depth/mask) members -> an atomically written tar.

PNG and JSON are encoded without timestamps, so the same sample always gives the same bytes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from latentds.render.factors import CUBOID, sample_labels
from latentds.shardsets.producer import write_tar_shard


def encode_png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def encode_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def encode_json(labels: dict) -> bytes:
    return json.dumps(labels, sort_keys=True, separators=(",", ":")).encode()


def render_sample(spec, index: int, renderer) -> dict:
    """One WebDataset sample (``__key__`` plus encoded members) of a render of ``spec`` (a RenderSpec)."""
    labels = sample_labels(spec.preset, spec.seed, index, spec.size, spec.sequence, spec.steps)
    images = renderer.render(labels, depth="depth" in spec.extras, mask="mask" in spec.extras)
    sample = {"__key__": labels["key"], "png": encode_png(images["rgb"]), "json": encode_json(labels)}
    if "depth" in images:
        sample["depth.npy"] = encode_npy(images["depth"])
    if "mask" in images:
        sample["mask.png"] = encode_png(images["mask"])
    return sample


def write_shard(spec, shard: int, out: Path, on_samples: Callable[[int], None] | None = None,
                renderer=None) -> dict:
    """Render shard number ``shard`` of ``spec`` into ``out``; return its manifest record."""
    if renderer is None:
        from latentds.render.renderer import process_renderer  # noqa: PLC0415  (imports pyrender)

        renderer = process_renderer(spec.size, CUBOID)
    indices = spec.shard_ranges()[shard]
    samples = (render_sample(spec, index, renderer) for index in indices)
    return write_tar_shard(out, spec.shard_name(shard), indices.start, samples, on_samples)
