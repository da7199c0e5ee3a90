"""Render one shard: its samples -> PNG/JSON(/depth/mask) members -> an atomically written tar."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from latentds.render.factors import CUBOID, sample_labels
from latentds.shardsets.members import encode_json, encode_npy, encode_png
from latentds.shardsets.producer import write_tar_shard


def render_sample(spec, index: int, renderer) -> dict:
    """One WebDataset sample (``__key__`` plus encoded members) of a render of ``spec`` (a RenderSpec)."""
    labels = sample_labels(spec.preset, spec.seed, index, spec.size, spec.sequence, spec.steps,
                           identities=spec.identities)
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
