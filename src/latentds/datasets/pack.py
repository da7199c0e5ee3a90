"""Any public dataset -> a latentds shard set (the same contract as rendered ones), resumable and deterministic.

    pack_dataset("utkface", "/data/utkface", "data/utkface-64", split="train", size=64)

Each sample becomes ``KEY.png`` (RGB, centre-cropped to a square and resized to ``size``, unless ``size`` is None)
and ``KEY.json`` (the dataset's labels plus ``index``, ``source_key``, ``dataset`` and ``split``); KEY is the
zero-padded index in the dataset's own (sorted) order, so the same data always packs to the same bytes.

A source image that cannot be decoded (a truncated or corrupt file) is skipped, not packed: its shard record and
the manifest's ``damaged`` list name it (index, file, error), the manifest's ``count`` is what was packed, and the
key sequence simply has a gap there. Unreadable metadata (annotation files, split lists) is an error instead.
"""

from __future__ import annotations

import os
import shlex
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
from PIL import Image

from latentds.datasets.public import PublicDataset, open_dataset
from latentds.datasets.transforms import ImageTransform
from latentds.errors import DatasetLayoutError, InvalidParameterError, LatentdsError
from latentds.shardsets.encoders import encode_json, encode_png
from latentds.shardsets.manifest import brace_pattern, factor_rows, loading_section
from latentds.shardsets.producer import ShardReport, produce_shards, write_tar_shard
from latentds.shardsets.spec import ShardSetSpec
from latentds.text import markdown_code, markdown_text

# What decoding a damaged image file raises (PIL: OSError for truncated data, SyntaxError for broken structure,
# ValueError/struct.error/zlib.error/EOFError from plugins, DecompressionBombError for absurd sizes).
DAMAGED_IMAGE = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)

# The order of a pack manifest's keys (part of its bytes); "factors" only for datasets with a factor table
# (PublicDataset.factor_table), "damaged" only when images were left out.
MANIFEST_KEYS = ("format", "format_version", "generator", "generator_version", "name", "dataset", "split", "summary",
                 "description", "citation", "params", "command", "source", "image_size", "count", "members", "labels",
                 "factors", "skipped", "shards", "damaged")


@dataclass(frozen=True)
class PackSpec(ShardSetSpec):
    """What to pack (a kind of shard set: see latentds.shardsets.spec). ``count`` is the dataset's length;
    ``root`` is where it was read (not part of params, so moving the data does not make a finished pack look like
    another dataset)."""

    generator: ClassVar[str] = "latentds.pack"
    count_option: ClassVar[str] = "the number of images"
    params_omit: ClassVar[tuple[str, ...]] = ("root",)
    manifest_keys: ClassVar[tuple[str, ...]] = MANIFEST_KEYS

    dataset: str
    split: str
    root: str
    count: int
    size: int | None = 64
    shard_size: int = 1000
    name: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "name", self.name or f"{self.dataset}-{self.split}")
        self.check()

    @property
    def total(self) -> int:
        return self.count

    def transform(self) -> ImageTransform:
        return ImageTransform(size=self.size, crop="center" if self.size else None)

    def command(self) -> str:
        """The ``latentds pack`` command (without --out) that packs exactly this set, with its real ROOT."""
        return pack_command(self).replace(" ROOT ", f" {shlex.quote(self.root)} ", 1)

    def recorded_command(self) -> str:
        """The command the manifest and card record: with ROOT for the data's place, which is not part of it."""
        return pack_command(self)

    def manifest_fields(self, records: list[dict]) -> dict:
        dataset = _open(self)
        damaged = [entry for rec in records for entry in rec.get("damaged", [])]
        if not sum(rec["count"] for rec in records):
            first = damaged[0] if damaged else {}
            raise DatasetLayoutError(f"{self.dataset}: none of the {self.count:,} images under {self.root} could be "
                                     f"decoded (first: {first.get('file')}: {first.get('error')})")
        fields = {
            "dataset": self.dataset, "split": self.split,
            "summary": f"{self.dataset}, split {self.split!r}",
            "description": dataset.description, "citation": dataset.citation, "source": self.root,
            "members": {"png": "8-bit RGB image",
                        "json": "the dataset's labels, plus index, source_key, dataset, split"},
            "labels": sorted(_first_labels(dataset, {entry["index"] for entry in damaged})),
            "skipped": len(getattr(dataset, "skipped", [])),
        }
        if damaged:  # only then, so that packs without damage keep the manifest bytes they always had
            fields["damaged"] = damaged
        factors = dataset.factor_table()
        if factors:  # the numeric labels that are factors: streams carry them as vectors, analysis probes them
            fields["factors"] = factors
        return fields

    def card(self, manifest: dict) -> str:
        return pack_card(manifest)


def check_factor_table(dataset: PublicDataset) -> None:
    """DatasetLayoutError, before anything is written, if the dataset's factor table is one the loader would
    refuse: a name given twice, or a path that is not a label path (latentds.datasets.factors)."""
    from latentds.datasets.factors import parse_path  # noqa: PLC0415

    seen = set()
    for row in dataset.factor_table():
        name, path = row.get("name"), row.get("path", row.get("name"))
        try:
            parse_path(path)
            problem = "is given twice" if name in seen else ""
        except ValueError:
            problem = "is not a label path"
        if problem:
            raise DatasetLayoutError(f"{dataset.name}: the factor {str(name)[:60]!r} {problem}, so the "
                                     f"packed set could not be loaded; is {dataset.root} damaged?")
        seen.add(name)


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


def _first_labels(dataset: PublicDataset, damaged: set[int]) -> dict:
    for index in range(len(dataset)):
        if index not in damaged:
            try:
                return dataset[index]["labels"]
            except LatentdsError:
                raise
            except DAMAGED_IMAGE:
                continue
    return {}


def pack_sample(spec: PackSpec, dataset: PublicDataset, index: int, transform: ImageTransform) -> dict:
    sample = dataset[index]
    labels = {**sample["labels"], "index": index, "source_key": sample["key"], "dataset": spec.dataset,
              "split": spec.split}
    pixels = np.asarray(transform.pil(sample["image"]), dtype=np.uint8)
    return {"__key__": f"{index:09d}", "png": encode_png(pixels), "json": encode_json(labels)}


def source_file(dataset: PublicDataset, index: int) -> str:
    """The file sample ``index`` is read from, for messages (the dataset's ``source_file``, if it has one)."""
    try:
        return str(dataset.source_file(index))
    except Exception:  # noqa: BLE001  (only for a message)
        return f"sample {index}"


def write_pack_shard(spec: PackSpec, shard: int, out: Path, on_samples: Callable[[int], None] | None = None) -> dict:
    """Pack shard number ``shard`` of ``spec`` into ``out``; return its manifest record, with ``damaged``
    listing the images that could not be decoded (index, file, error) when there are any."""
    dataset, transform = _open(spec), spec.transform()
    indices = spec.shard_ranges()[shard]
    damaged: list[dict] = []

    def samples():
        for i in indices:
            try:
                sample = pack_sample(spec, dataset, i, transform)
            except LatentdsError:
                raise  # a layout problem (a missing file): not a damaged image
            except DAMAGED_IMAGE as e:
                damaged.append({"index": i, "file": source_file(dataset, i), "error": f"{type(e).__name__}: {e}"})
                if on_samples is not None:
                    on_samples(1)
                continue
            yield sample

    record = write_tar_shard(out, spec.shard_name(shard), indices.start, samples(), on_samples)
    if damaged:
        record["damaged"] = damaged
    return record


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
    check_factor_table(opened)
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
    damaged = manifest.get("damaged", [])
    if damaged:
        listed = "\n".join(f"- {markdown_code(entry['file'])} ({markdown_text(entry['error'])})"
                           for entry in damaged[:20])
        more = f"\n- and {len(damaged) - 20} more (see `damaged` in manifest.json)" if len(damaged) > 20 else ""
        skipped += (f"\n{len(damaged)} source images could not be decoded and were left out (their keys are "
                    f"missing from the sequence):\n\n{listed}{more}\n")
    factors = ("\n## Factors\n\nThe labels that are factors of variation: `load_shards` gives them as each sample's factor "
               "vector (with a mask), and `latentds analyze` probes them.\n\n" + factor_rows(manifest["factors"]) + "\n"
               if manifest.get("factors") else "")  # said only when there are some: other cards keep their bytes
    source = markdown_code(manifest["source"])  # a path, quoted escaped (a plain one keeps its bytes)
    return f"""# {manifest['name']}: {manifest['dataset']}, split `{manifest['split']}`

{manifest['count']:,} images {geometry}, packed by latentds {manifest['generator_version']} from {source}:

    {manifest['command']}

{manifest['description']}
{skipped}
## Layout

WebDataset shards `{brace_pattern(manifest)}`; sample key = zero-padded index in the dataset's sorted order;
members `KEY.png` (RGB) and `KEY.json` with the labels: {', '.join(map(markdown_code, manifest['labels']))}.
`manifest.json` lists every shard with its count, size and sha256.
{factors}
{loading_section(manifest)}
## Citation

```
{manifest['citation']}
```
"""
