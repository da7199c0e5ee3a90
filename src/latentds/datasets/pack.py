"""Any public dataset -> a latentds shard set (the same contract as rendered ones), resumable and deterministic.

    pack_dataset("utkface", "/data/utkface", "data/utkface-64", split="train", size=64)

Each sample becomes ``KEY.png`` (RGB, centre-cropped to a square and resized to ``size``, unless ``size`` is None)
and ``KEY.json`` (the dataset's labels plus ``index``, ``source_key``, ``dataset`` and ``split``); KEY is the
zero-padded index in the dataset's own (sorted) order, so the same data always packs to the same bytes.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from latentds import __version__
from latentds.datasets.public import PublicDataset, open_dataset
from latentds.datasets.transforms import ImageTransform
from latentds.errors import InvalidParameterError
from latentds.shardsets.members import encode_json, encode_png
from latentds.shardsets.manifest import FORMAT, FORMAT_VERSION, brace_pattern
from latentds.shardsets.producer import ShardReport, produce_shards, write_tar_shard

MIN_SIZE, MAX_SIZE = 8, 1024


@dataclass(frozen=True)
class PackSpec:
    """What to pack. ``count`` is the dataset's length; ``root`` is where it was read (not part of params, so
    moving the data does not make a finished pack look like another dataset)."""

    dataset: str
    split: str
    root: str
    count: int
    size: int | None = 64
    shard_size: int = 1000
    name: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "name", self.name or f"{self.dataset}-{self.split}")
        if self.size is not None and not MIN_SIZE <= self.size <= MAX_SIZE:
            raise InvalidParameterError(f"--size must be from {MIN_SIZE} to {MAX_SIZE} pixels (got {self.size})")
        if self.shard_size < 1:
            raise InvalidParameterError(f"--shard-size must be at least 1 (got {self.shard_size})")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise InvalidParameterError(f"--name {self.name!r} may hold only letters, digits, '_' and '-'")

    def params(self) -> dict:
        fields = {k: v for k, v in asdict(self).items() if k != "root"}
        return {"generator": "latentds.pack", "generator_version": __version__, **fields}

    def transform(self) -> ImageTransform:
        return ImageTransform(size=self.size, crop="center" if self.size else None)

    def shard_ranges(self) -> list[range]:
        return [range(a, min(a + self.shard_size, self.count)) for a in range(0, self.count, self.shard_size)]

    def shard_name(self, index: int) -> str:
        return f"{self.name}-{index:06d}.tar"

    def finish(self, records: list[dict]) -> tuple[dict, str]:
        dataset = _open(self)
        first = dataset[0]["labels"] if len(dataset) else {}
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "generator": "latentds.pack", "generator_version": __version__,
            "name": self.name, "dataset": self.dataset, "split": self.split,
            "summary": f"{self.dataset}, split {self.split!r}",
            "description": dataset.description, "citation": dataset.citation,
            "params": self.params(), "command": pack_command(self), "source": self.root,
            "image_size": self.size, "count": self.count,
            "members": {"png": "8-bit RGB image",
                        "json": "the dataset's labels, plus index, source_key, dataset, split"},
            "labels": sorted(first),
            "skipped": len(getattr(dataset, "skipped", [])),
            "shards": records,
        }
        return manifest, pack_card(manifest)


def pack_command(spec: PackSpec) -> str:
    parts = ["latentds pack", spec.dataset, "ROOT", f"--split {spec.split}",
             f"--size {spec.size}" if spec.size else "--keep-size", f"--shard-size {spec.shard_size}"]
    if spec.name != f"{spec.dataset}-{spec.split}":
        parts.append(f"--name {spec.name}")
    return " ".join(parts)


_OPEN: dict[tuple, PublicDataset] = {}


def _open(spec: PackSpec) -> PublicDataset:
    """The dataset, opened once per process (workers open their own)."""
    key = (spec.dataset, spec.root, spec.split)
    if key not in _OPEN:
        _OPEN[key] = open_dataset(spec.dataset, spec.root, spec.split)
    return _OPEN[key]


def pack_sample(spec: PackSpec, dataset: PublicDataset, index: int, transform: ImageTransform) -> dict:
    sample = dataset[index]
    labels = {**sample["labels"], "index": index, "source_key": sample["key"], "dataset": spec.dataset,
              "split": spec.split}
    pixels = np.asarray(transform.pil(sample["image"]), dtype=np.uint8)
    return {"__key__": f"{index:09d}", "png": encode_png(pixels), "json": encode_json(labels)}


def write_pack_shard(spec: PackSpec, shard: int, out: Path, on_samples: Callable[[int], None] | None = None) -> dict:
    """Pack shard number ``shard`` of ``spec`` into ``out``; return its manifest record."""
    dataset, transform = _open(spec), spec.transform()
    indices = spec.shard_ranges()[shard]
    samples = (pack_sample(spec, dataset, i, transform) for i in indices)
    return write_tar_shard(out, spec.shard_name(shard), indices.start, samples, on_samples)


def pack_dataset(dataset: str, root: str | os.PathLike, out: str | os.PathLike, *, split: str | None = None,
                 size: int | None = 64, shard_size: int = 1000, name: str | None = None, workers: int | None = None,
                 overwrite: bool = False, progress: bool = True) -> ShardReport:
    """Pack the ``split`` of public dataset ``dataset`` read from ``root`` into a shard set in ``out``.

    ``size``: square side after a centre crop (None keeps each image as it is). Resumes an interrupted pack in
    ``out``; refuses a directory holding another dataset unless ``overwrite``. Returns a ShardReport.
    """
    opened = open_dataset(dataset, root, split)
    if len(opened) == 0:
        raise InvalidParameterError(f"{dataset} split {opened.split!r} under {root} has no images")
    spec = PackSpec(dataset, opened.split, str(Path(root).resolve()), len(opened), size, shard_size, name)
    _OPEN[(spec.dataset, spec.root, spec.split)] = opened
    return produce_shards(spec, out, write_pack_shard, workers=workers, overwrite=overwrite, progress=progress,
                          verb="packed")


def pack_card(manifest: dict) -> str:
    """The README.md written beside packed shards."""
    size = manifest["image_size"]
    geometry = f"centre-cropped to a square and resized to {size}x{size} px" if size else "at their original size"
    skipped = (f"\n{manifest['skipped']} source files were skipped because their names or records could not be "
               "parsed (see the dataset's loader for the rule).\n" if manifest["skipped"] else "")
    return f"""# {manifest['name']}: {manifest['dataset']}, split `{manifest['split']}`

{manifest['count']:,} images {geometry}, packed by latentds {manifest['generator_version']} from `{manifest['source']}`:

    {manifest['command']}

{manifest['description']}
{skipped}
## Layout

WebDataset shards `{brace_pattern(manifest)}`; sample key = zero-padded index in the dataset's sorted order;
members `KEY.png` (RGB) and `KEY.json` with the labels: {', '.join(f'`{k}`' for k in manifest['labels'])}.
`manifest.json` lists every shard with its count, size and sha256.

## Loading

```python
import webdataset as wds
ds = wds.WebDataset("DIR/{brace_pattern(manifest)}", shardshuffle=False).decode("rgb").to_tuple("png", "json")

import latentds
ds = latentds.load_shards("DIR", batch_size=64, shuffle=1000)  # torch DataLoader-ready, split across workers/ranks
```

## Citation

```
{manifest['citation']}
```
"""
