"""Render one shard: its samples -> PNG/JSON(/depth/mask) members -> a tar written under a temporary name.

Reproducible tars: fixed mtime, owner and mode, members in key order, PNG and JSON encoders without
timestamps. A shard becomes visible under its final name only once it is complete (``os.replace``).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import webdataset as wds
from PIL import Image

from latentds.render.factors import CUBOID, sample_labels
from latentds.render.manifest import file_sha256
from latentds.render.spec import RenderSpec

# 2000-01-01T00:00:00Z: any fixed value makes the tar bytes reproducible.
TAR_MTIME = 946684800
PARTIAL_SUFFIX = ".partial"


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


def render_sample(spec: RenderSpec, index: int, renderer) -> dict:
    """One WebDataset sample (``__key__`` plus encoded members) of a render."""
    labels = sample_labels(spec.preset, spec.seed, index, spec.size, spec.sequence, spec.steps)
    images = renderer.render(labels, depth="depth" in spec.extras, mask="mask" in spec.extras)
    sample = {"__key__": labels["key"], "png": encode_png(images["rgb"]), "json": encode_json(labels)}
    if "depth" in images:
        sample["depth.npy"] = encode_npy(images["depth"])
    if "mask" in images:
        sample["mask.png"] = encode_png(images["mask"])
    return sample


def partial_path(out: Path, name: str) -> Path:
    """Where a shard is written until complete: hidden, and not ending in .tar, so no reader takes it."""
    return out / f".{name}{PARTIAL_SUFFIX}"


def write_shard(spec: RenderSpec, shard: int, out: Path, renderer=None,
                on_samples: Callable[[int], None] | None = None) -> dict:
    """Render shard number ``shard`` of ``spec`` into ``out``; return its manifest record.

    ``on_samples(k)`` is called every few samples with the number rendered since the last call.
    """
    if renderer is None:
        from latentds.render.renderer import process_renderer  # noqa: PLC0415  (imports pyrender)

        renderer = process_renderer(spec.size, CUBOID)
    indices = spec.shard_ranges()[shard]
    name = spec.shard_name(shard)
    tmp = partial_path(out, name)
    pending = 0
    with open(tmp, "wb") as f:
        with wds.TarWriter(f, user="latentds", group="latentds", mode=0o444, mtime=TAR_MTIME, encoder=False) as tar:
            for index in indices:
                tar.write(render_sample(spec, index, renderer))
                pending += 1
                if on_samples is not None and pending == 50:
                    on_samples(pending)
                    pending = 0
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename makes it look complete
    if on_samples is not None and pending:
        on_samples(pending)
    record = {"name": name, "count": len(indices), "first_index": indices.start,
              "bytes": tmp.stat().st_size, "sha256": file_sha256(tmp)}
    os.replace(tmp, out / name)
    return record
