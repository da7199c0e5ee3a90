"""Stream any latentds shard set (or any WebDataset shards) into PyTorch, webdataset-style.

    ds = load_shards("data/varied", batch_size=64, shuffle=1000)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    for epoch in range(10):
        ds.set_epoch(epoch)
        for batch in loader:      # {"image": (64,3,H,W) float, "labels": [dict]*64, "__key__": [...],
            ...                   #  with a factor table also "factors" (64,K) and "factor_mask" (64,K) bool}

``dtype="uint8"`` yields the images as uint8 (64,3,H,W) instead, for a model that converts them on its device.

What the stream guarantees (the factor vector read along the manifest's factor table, how an epoch is split into
equal slots across DataLoader workers and DDP ranks, the plain / pairs / groups layouts, the held-out split,
damaged samples and untrusted shard names) is written once, in ARCHITECTURE.md, "Shard sets" and "Streaming and
batching". Here: a shard straddling the held-out cut is read in part (``Shard.offset``); a PNG is inflated and
checked once and unfiltered by PIL (``shardsets/png.py``; torchvision's crash-prone decoder is not used), an
unusual one goes to PIL's own decoder; samples are numpy arrays until ``collate`` makes one tensor per batch;
a worker hands batches over by value (``handover.py``); local shards are opened as files, never through a URL
scheme.
"""

from __future__ import annotations

import io
import operator
import os
import random
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import orjson
import torch
import webdataset as wds
from braceexpand import braceexpand
from PIL import Image
from webdataset.utils import pytorch_worker_info

from latentds.datasets.batching import batched_units, exactly, pair_samples, sequence_group_samples
from latentds.datasets.factors import FactorVector, expand_table
from latentds.datasets.handover import LabelBatch, TensorOnArrival, contiguous, handed_over  # noqa: F401
from latentds.datasets.tarstream import tar_samples
from latentds.datasets.transforms import ImageTransform, to_float
from latentds.errors import DamagedSampleError, InvalidParameterError, ShardError
from latentds.shardsets.manifest import MANIFEST, read_manifest, unfinished_message
from latentds.shardsets.png import decode_plain_png

BATCHES = ("plain", "pairs", "groups")
DTYPES = ("float32", "uint8")  # the images a stream yields: float32 in value_range (the default), or uint8 0-255
SPLITS = ("train", "validation")


class ShardWarning(UserWarning):
    """A damaged shard was skipped (non-strict mode)."""


@dataclass(frozen=True)
class Shard:
    url: str
    count: int | None  # samples of it in the stream, when a manifest says
    offset: int = 0  # samples skipped at its start (a shard partly included by a split)


def resolve_shards(source: str | os.PathLike | Iterable[str]) -> tuple[list[Shard], dict | None]:
    """Shards (and the manifest, if any) of a directory, a brace pattern, a URL or a list of them."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        directory = Path(source)
        manifest = read_manifest(directory, strict=False)
        if manifest is not None:
            return checked_counts([Shard(str(directory / s["name"]), s["count"]) for s in manifest["shards"]],
                                  directory / MANIFEST), manifest
        unfinished = unfinished_message(directory)
        if unfinished:
            raise ShardError(unfinished)
        urls = sorted(str(p) for p in directory.glob("*.tar"))
        if not urls:
            raise ShardError(f"{directory} holds no .tar shards and no {MANIFEST}")
        return [Shard(u, None) for u in urls], None
    patterns = [str(source)] if isinstance(source, (str, os.PathLike)) else [str(s) for s in source]
    urls = [u for p in patterns for u in braceexpand(p)]
    if not urls:
        raise ShardError(f"no shards in {source!r}")
    manifest, counts = None, {}
    local_dirs = {Path(u).parent for u in urls if not _is_url(u)}
    if len(local_dirs) == 1:  # a manifest beside local shards gives their counts
        manifest = read_manifest(local_dirs.pop(), strict=False)
        if manifest is not None:
            counts = {s["name"]: s["count"] for s in manifest["shards"]}
    for u in urls:
        if not _is_url(u) and not Path(u).is_file():
            if len(urls) == 1 and u == str(source) and not u.endswith(".tar"):  # meant as a shard-set directory
                raise ShardError(f"no shard set at {u} (no manifest.json: {u} does not exist); render one with "
                                 f"`latentds render --phi --out {u}`, or give the directory of an existing set")
            raise ShardError(f"shard {u} does not exist")
    shards = [Shard(u, counts.get(Path(u).name)) for u in urls]
    return (checked_counts(shards, Path(urls[0]).parent / MANIFEST) if counts else shards), manifest


# A tar member takes at least its 512-byte header, so a shard of B bytes holds at most B // 512 samples.
TAR_BLOCK = 512


def checked_counts(shards: list[Shard], manifest: Path) -> list[Shard]:
    """``shards`` unless the sample counts their manifest claims are far beyond what their files can hold (one
    sample per 512-byte tar block at most; one stat per local shard): then ShardError, so that an epoch is never
    planned on such a count (a manifest claiming 10^9 samples of 200 planned 125 million pair batches; 10^18 an
    ETA of 10^13 hours). Far beyond: more than twice the room, and 10,000 samples more; so a truncated or missing
    shard stays what it was, a loss reported when it is read."""
    claimed = room = 0
    for s in shards:
        if s.count is None or _is_url(s.url):
            continue
        try:
            size = os.stat(s.url).st_size
        except OSError:
            size = 0
        claimed, room = claimed + s.count, room + size // TAR_BLOCK
    if claimed > room + max(room, 10_000):
        raise ShardError(f"{manifest} says its shards hold {claimed:,} samples, but their files have room for at "
                         f"most {room:,}: the manifest is damaged or does not belong to these shards (`latentds "
                         f"info {manifest.parent} --verify` checks it); rebuild the set with the command that made "
                         "it and --overwrite")
    return shards


def _is_url(url: str) -> bool:
    """A URL webdataset opens (``pipe:CMD``, ``https://...``), as opposed to a local file name."""
    return url.startswith("pipe:") or "://" in url


def resize_for(source, size: int) -> int | None:
    """``size`` unless the shard set's manifest says its images already are ``size`` x ``size`` (then None):
    what to pass as ``load_shards(size=...)`` so that every image reaches a model at the size it expects."""
    manifest = resolve_shards(source)[1] or {}
    return None if manifest.get("image_size") == size else size


def slot_plan(shards: list[Shard], slot: int, slots: int, order_seed: int | None) -> list[tuple[str, int, int | None]]:
    """The (url, skip, take) parts that slot ``slot`` of ``slots`` reads this epoch.

    ``order_seed`` shuffles the shard order (None keeps it). With all counts known, the slots get equal
    contiguous ranges of the concatenated samples; otherwise whole shards round-robin (take None = all).
    """
    order = list(shards)
    if order_seed is not None:
        random.Random(order_seed).shuffle(order)
    if any(s.count is None for s in order):
        return [(s.url, s.offset, None) for s in order[slot::slots]]
    per_slot = sum(s.count for s in order) // slots
    return range_parts(order, [(slot * per_slot, (slot + 1) * per_slot)])


def range_parts(shards: list[Shard], ranges: list[tuple[int, int]]) -> list[tuple[str, int, int]]:
    """The (url, skip, take) parts holding positions [lo, hi) of each range of the concatenated (counted) shards."""
    plan = []
    for lo, hi in ranges:
        start = 0
        for s in shards:
            a, b = max(lo, start), min(hi, start + s.count)
            if a < b:
                plan.append((s.url, s.offset + a - start, b - a))
            start += s.count
    return plan


def trim_shards(shards: list[Shard], lo: int, hi: int) -> list[Shard]:
    """The (counted) shards cut down to positions [lo, hi) of their concatenation, partial shards by offset."""
    out, start = [], 0
    for s in shards:
        a, b = max(lo, start), min(hi, start + s.count)
        if a < b:
            out.append(Shard(s.url, b - a, s.offset + a - start))
        start += s.count
    return out


def read_parts(parts: list[tuple[str, int, int | None]], strict: bool,
               decode: Callable[[dict], dict] | None = None, required: Iterable[str] = ()) -> Iterator[dict]:
    """The samples of each (url, skip, take) part: raw webdataset samples (``__key__``, ``__url__`` and bytes
    per member), or ``decode(raw)`` of each. Positions are counted over every sample the tar holds, damaged or
    not, so every slot reading a shard agrees on which sample is at which position.

    A sample missing one of the ``required`` members, or whose ``decode`` raises, is dropped; a shard that
    cannot be read to its end loses the rest. Losses are reported per part as one ShardWarning (shard, samples
    lost, why); ``strict`` raises ShardError at the first one instead.
    """
    required = tuple(required)
    for url, skip, take in parts:
        yielded, consumed, damaged, events, error = 0, 0, [], [], None

        def on_damage(offset: int, reason: str, url=url, events=events) -> None:
            if strict:
                raise ShardError(f"shard {url}: {reason} at byte {offset}; strict=False skips damaged samples "
                                 "with a warning")
            events.append(f"{reason} at byte {offset}")

        try:
            with _open_shard(url) as stream:
                for i, sample in enumerate(tar_samples(stream, url, on_damage)):
                    if i < skip:
                        continue
                    if take is not None and consumed == take:
                        break
                    consumed += 1
                    try:
                        missing = [m for m in required if m not in sample]
                        if missing:
                            raise DamagedSampleError(f"no {' or '.join(missing)} member")
                        item = decode(sample) if decode is not None else sample
                    except Exception as e:  # noqa: BLE001  (whatever damaged bytes make a decoder raise)
                        reason = f"sample {sample['__key__']}: {_reason(e)}"
                        if strict:
                            raise ShardError(f"shard {url}: {reason}; strict=False skips damaged samples with a "
                                             "warning") from e
                        damaged.append(reason)
                        continue
                    yield item
                    yielded += 1
        except ShardError:
            raise
        except Exception as e:  # a truncated or corrupt tar, an unreachable URL
            error = e
        # With a count, a loss is a shortfall (damage this part only skipped over is another part's loss).
        if (yielded < take) if take is not None else (damaged or events or error is not None):
            if take is not None:
                lost = f"{take - yielded} of {take}"
            elif error is not None or events:
                lost = f"{len(damaged)} damaged and an unknown number of other"
            else:
                lost = f"{len(damaged)}"
            why = damaged[:3] + (["..."] if len(damaged) > 3 else []) + events[:3]
            if error is not None:
                why.append(str(error))
            elif take is not None and consumed < take:
                why.append("the shard ended early")
            message = f"shard {url}: {lost} samples lost ({'; '.join(why)})"
            if strict:
                raise ShardError(message + "; strict=False skips damaged shards with a warning")
            warnings.warn(message + "; skipped", ShardWarning, stacklevel=2)


def _open_shard(url: str):
    """A local shard is opened as a file (never through a URL scheme); a URL through webdataset."""
    return open(url, "rb") if not _is_url(url) else wds.gopen(url, "rb")


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return text if isinstance(error, DamagedSampleError) else f"{type(error).__name__}: {text}"[:200]


def decode_sample(sample: dict, transform: ImageTransform, manifest: dict | None = None,
                  factors: FactorVector | None = None) -> dict:
    """Raw sample -> {"image": uint8 tensor (3,H,W), "labels": dict, "__key__", "__url__"} plus, when present,
    "depth" (float32 H,W), "mask" (uint8 H,W) and, when the manifest has a factor table, "factors"/"factor_mask".

    ``decode_arrays`` with the arrays as tensors (what a stream yields, converted to float, when not batching).
    """
    return as_tensors(decode_arrays(sample, transform, manifest, factors))


def decode_arrays(sample: dict, transform: ImageTransform, manifest: dict | None = None,
                  factors: FactorVector | None = None, raw_labels: bool = False) -> dict:
    """Raw sample -> {"image": uint8 array (H,W,3), "labels": dict, "__key__", "__url__"} plus, when present,
    "depth" (float32 H,W), "mask" (uint8 H,W) and, when the manifest has a factor table, "factors"/"factor_mask",
    all numpy arrays: ``collate`` makes one tensor of each per batch (torch calls per sample cost more than the
    rest of the decode's Python).

    The image stays uint8 here; ``ShardStream`` converts it to float (per batch when batching). Damaged members
    raise (DamagedSampleError, or what PIL, orjson or numpy raise); nothing crashes the process. With the set's
    ``manifest``, a sample must also fit it (its image size; labels holding every factor of its table), so that
    one damaged sample cannot break the collation of a whole batch. ``factors``: the manifest's compiled
    FactorVector (pass it when decoding many samples; else it is compiled here, per call). ``raw_labels``: "labels"
    is the sample's JSON document (bytes, parsed and checked here all the same), for ``collate`` to join into a
    ``LabelBatch`` that parses on first use.
    """
    png = sample["png"]
    pixels = None if transform.geometric else decode_plain_png(png)
    if pixels is not None:
        # inflated and checked once (shardsets/png.py), unfiltered by PIL: no crash-prone decoder involved
        if transform.flip and torch.rand(()) < 0.5:  # the same draw of torch's generator as the careful way
            pixels = pixels[:, ::-1]
    else:
        with Image.open(io.BytesIO(png)) as image:
            image.load()
            pixels = transform.array(image)
    out = {"__key__": sample["__key__"], "__url__": sample.get("__url__", ""), "image": pixels}
    labels = orjson.loads(sample["json"]) if "json" in sample else {}
    if not isinstance(labels, dict):
        raise DamagedSampleError(f"its labels are a JSON {type(labels).__name__}, not an object")
    out["labels"] = (sample.get("json") or b"{}") if raw_labels else labels
    if "depth.npy" in sample:
        out["depth"] = np.load(io.BytesIO(sample["depth.npy"]), allow_pickle=False)
    if "mask.png" in sample:
        with Image.open(io.BytesIO(sample["mask.png"])) as mask:
            out["mask"] = np.array(mask, dtype=np.uint8)
    if factors is None and manifest and manifest.get("factors"):
        factors = FactorVector.of(manifest)
    if factors is not None:
        out["factors"], out["factor_mask"] = factors(labels)
    if manifest:
        _check_fits(out, manifest, transform)
    return out


def as_tensors(sample: dict) -> dict:
    """A ``decode_arrays`` sample with its arrays as tensors: the image (3, H, W), the others as they are."""
    out = dict(sample)
    for key, value in sample.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
            out[key] = value.permute(2, 0, 1) if key == "image" else value
    return out


def _check_fits(out: dict, manifest: dict, transform: ImageTransform) -> None:
    size = manifest.get("image_size")
    shape = tuple(out["image"].shape[:2])  # (H, W) of an (H, W, 3) array
    if isinstance(size, int) and transform.size is None and shape != (size, size):
        raise DamagedSampleError(f"its image is {shape} pixels, the set's are {size}x{size}")


def required_members(manifest: dict | None) -> tuple[str, ...]:
    """The members every sample must have: those the manifest lists (``png`` and ``json`` for latentds sets),
    or just ``png`` for shards without one."""
    members = (manifest or {}).get("members")
    if isinstance(members, dict) and "png" in members:
        return tuple(m for m in members if isinstance(m, str))
    return ("png",)


def collate(samples: list[dict]) -> dict:
    """Stack the arrays (or tensors) of decoded samples into one tensor each, images as a uint8 (N, 3, H, W)
    view of (N, H, W, 3) memory (``to_float`` reorders them as it converts); keys and urls become lists, labels
    a LabelBatch (of the JSON documents themselves when decoded with ``raw_labels``)."""
    batch = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], np.ndarray):
            stacked = torch.from_numpy(np.stack(values))
            batch[key] = stacked.permute(0, 3, 1, 2) if key == "image" else stacked
        elif isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        else:
            batch[key] = _label_batch(values) if key == "labels" else values
    return batch


def _label_batch(values: list) -> LabelBatch:
    return LabelBatch.of_documents(values) if isinstance(values[0], bytes) else LabelBatch(values)


class ShardStream(torch.utils.data.IterableDataset):
    """An iterable over decoded samples (or batches) of a shard set; see the module docstring.

    ``shards`` is the streamed selection (cut down by the split); ``all_shards`` the set as resolved.
    """

    def __init__(self, shards: list[Shard], manifest: dict | None, transform: ImageTransform, shuffle: int,
                 seed: int, batch_size: int | None, partial: bool, strict: bool, *, batches: str = "plain",
                 pair_label: str = "identity", holdout: float = 0.0, split: str = "train", dtype: str = "float32"):
        super().__init__()
        self.dtype = dtype
        self.manifest, self.transform = manifest, transform
        self.shuffle, self.seed, self.batch_size, self.partial, self.strict = shuffle, seed, batch_size, partial, strict
        self.batches, self.pair_label, self.holdout, self.split = batches, pair_label, holdout, split
        self.epoch = 0
        self.factors = FactorVector.of(manifest)  # compiled once; None without a factor table
        self.all_shards = shards
        self.steps = self._check_options()  # K of a sequence set in groups mode, else None
        self.split_range, self.shards = self._split(shards)
        self._check_batch_fits()

    def _check_options(self) -> int | None:
        bad = InvalidParameterError
        if self.batch_size is not None:
            try:
                positive = not isinstance(self.batch_size, bool) and operator.index(self.batch_size) >= 1
            except TypeError:
                positive = False
            if not positive:
                raise bad(f"batch_size must be a whole number of at least 1, or None for single samples (got "
                          f"{self.batch_size!r})")
        if self.dtype not in DTYPES:
            raise bad(f"dtype must be one of {', '.join(map(repr, DTYPES))} (or torch.float32 / torch.uint8), not "
                      f"{self.dtype!r}")
        if self.batches not in BATCHES:
            raise bad(f"batches must be one of {', '.join(map(repr, BATCHES))}, not {self.batches!r}")
        if self.split not in SPLITS:
            raise bad(f"split must be one of {', '.join(map(repr, SPLITS))}, not {self.split!r}")
        if isinstance(self.holdout, bool) or not isinstance(self.holdout, (int, float)) or not 0 <= self.holdout < 1:
            raise bad(f"holdout must be a fraction from 0 (inclusive) to 1 (exclusive), not {self.holdout!r}")
        if self.split == "validation" and not self.holdout:
            raise bad("split='validation' needs holdout > 0 (the fraction of the set held out for validation)")
        if self.holdout and not all(s.count is not None for s in self.all_shards):
            raise ShardError("holdout needs the sample count of every shard (from a manifest.json beside the "
                             "shards); not all of these shards have one")
        if self.batches == "plain":
            return None
        if not self.batch_size:
            raise bad(f"batches={self.batches!r} needs a batch_size")
        if self.batches == "pairs":
            if self.batch_size % 2:
                raise bad(f"batches='pairs' needs an even batch_size (two images per pair), not {self.batch_size}")
            if self.partial:
                raise bad("batches='pairs' always yields full batches (pairs are re-drawn to fill the epoch); "
                          "drop partial=True")
            if not isinstance(self.pair_label, str) or not self.pair_label:
                raise bad(f"pair_label must name a top-level label key, not {self.pair_label!r}")
            return None
        params = (self.manifest or {}).get("params", {})
        if not params.get("sequence") or not params.get("steps"):
            raise ShardError("batches='groups' needs a `latentds render --sequence F --steps K` shard set; this one's "
                             "manifest names no sequence factor (e.g. `latentds render --varied --n 2400 --sequence "
                             "phi_0,theta_0,light_azimuth --steps 8 --out data/sweeps`)")
        steps = int(params["steps"])
        if self.batch_size % steps:
            lower, upper = self.batch_size // steps * steps, (self.batch_size // steps + 1) * steps
            nearest = f"{lower} or {upper}" if lower else f"{upper}"
            raise bad(f"batches='groups' needs a batch_size that is a multiple of the set's {steps} steps per "
                      f"group (whole groups per batch), not {self.batch_size}; use e.g. {nearest}")
        if not all(s.count is not None for s in self.all_shards):
            raise ShardError("batches='groups' needs the sample count of every shard (from the set's manifest.json)")
        self._check_group_alignment(steps)
        return steps

    def _check_group_alignment(self, steps: int) -> None:
        """Raise unless positions in the streamed shards fall on the set's groups (true of a whole set)."""
        first = {r.get("name"): r.get("first_index") for r in (self.manifest or {}).get("shards", [])}
        pos, prev_end = 0, None
        for s in self.all_shards:
            f = first.get(Path(s.url).name)
            if f is None:  # a URL the manifest does not name: cannot check
                return
            f += s.offset
            if (pos - f) % steps or (f % steps and prev_end != f):
                raise ShardError(f"shard {s.url} starts in the middle of a sequence group of {steps}, apart from the "
                                 f"rest of that group; batches='groups' needs whole groups: stream the set's "
                                 f"directory, or shards in order whose boundaries fall between groups")
            pos, prev_end = pos + s.count, f + s.count

    def _split(self, shards: list[Shard]) -> tuple[tuple[int, int | None], list[Shard]]:
        """(lo, hi) positions of the chosen split in the set's natural order, and the shards cut down to it."""
        if not all(s.count is not None for s in shards):
            return (0, None), shards  # holdout is 0 here
        total = sum(s.count for s in shards)
        if self.steps:  # whole groups
            end = total // self.steps * self.steps
            held = round(total // self.steps * self.holdout) * self.steps
        else:
            end, held = total, round(total * self.holdout)
        lo, hi = (0, end - held) if self.split == "train" else (end - held, end)
        if self.holdout and lo >= hi:
            raise InvalidParameterError(f"holdout={self.holdout} leaves the {self.split} split of this set of "
                                        f"{total} samples empty; choose a holdout that holds out some but not all")
        return (lo, hi), (shards if (lo, hi) == (0, total) else trim_shards(shards, lo, hi))

    def _check_batch_fits(self) -> None:
        """Refuse a batch larger than the (counted) set when every batch must be full: its epochs would be empty.
        With partial=True a batch may ask for more than the set holds (one short batch)."""
        if self.batch_size is None or self.partial or not self.counted:
            return
        size = sum(s.count for s in self.shards)
        steps = self.steps or 1
        units, per_batch = size // steps, self.batch_size // steps
        if per_batch > units:
            where = "this set" if not self.holdout else f"the {self.split} split of this set"
            what = f"{size:,} samples" + (f" ({units:,} whole groups of {self.steps})" if self.steps else "")
            fix = "lower batch_size" + ("" if self.batches == "pairs" else " or pass partial=True")
            raise InvalidParameterError(f"batch_size={self.batch_size:,} is more than the {what} of {where}: every "
                                        f"batch is full, so an epoch would hold none; {fix}")

    @property
    def _decode(self) -> Callable[[dict], dict]:
        if self.batches == "groups":
            return self._decode_group_member
        raw = self.batches == "plain" and bool(self.batch_size)  # labels as JSON until collated (see collate)
        return partial(decode_arrays, transform=self.transform, manifest=self.manifest, factors=self.factors,
                       raw_labels=raw)

    def _decode_group_member(self, raw: dict) -> dict:
        out = decode_arrays(raw, self.transform, self.manifest, self.factors)
        seq = out["labels"].get("sequence")
        if not (isinstance(seq, dict) and isinstance(seq.get("group"), int) and isinstance(seq.get("step"), int)):
            raise DamagedSampleError("its labels lack the sequence group and step every sample of this set has")
        return out

    @property
    def factor_table(self) -> list[dict]:
        """One row (name, type, range, unit, path, varies, description) per entry of the samples' "factors"
        vector, from the manifest (an "rgb" factor as three rows NAME_r/_g/_b); empty for shard sets without a
        factor table (e.g. packed public datasets)."""
        return expand_table(self.manifest)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch: with shuffle, the shard order and the shuffle buffer depend on (seed, epoch)."""
        self.epoch = epoch

    @property
    def counted(self) -> bool:
        return all(s.count is not None for s in self.shards)

    def samples_per_slot(self, slots: int) -> int | None:
        """Samples each slot reads per epoch (whole groups only in groups mode); None if counts unknown."""
        if not self.counted:
            return None
        if self.steps:
            return self.groups_per_slot(slots) * self.steps
        return sum(s.count for s in self.shards) // slots

    def groups_per_slot(self, slots: int) -> int:
        """Whole groups each slot gets per epoch (groups mode)."""
        return sum(s.count for s in self.shards) // self.steps // slots

    def epoch_samples(self, num_workers: int = 0, world_size: int | None = None) -> int | None:
        """Samples one rank reads per epoch with ``num_workers`` DataLoader workers (None if counts unknown)."""
        world_size = pytorch_worker_info()[1] if world_size is None else world_size
        workers = max(1, num_workers)
        per_slot = self.samples_per_slot(world_size * workers)
        return None if per_slot is None else per_slot * workers

    def epoch_batches(self, num_workers: int = 0, world_size: int | None = None) -> int | None:
        """Batches one rank gets per epoch (equal on every rank); None without batch_size or counts."""
        if self.batch_size is None or not self.counted:
            return None
        world_size = pytorch_worker_info()[1] if world_size is None else world_size
        workers = max(1, num_workers)
        if self.steps:
            units, per_batch = self.groups_per_slot(world_size * workers), self.batch_size // self.steps
        else:
            units, per_batch = self.samples_per_slot(world_size * workers), self.batch_size
        per_worker = -(-units // per_batch) if self.partial else units // per_batch
        return per_worker * workers

    def __iter__(self) -> Iterator[dict]:
        rank, world_size, worker, num_workers = pytorch_worker_info()
        slot, slots = rank * num_workers + worker, world_size * num_workers
        if self.batches == "groups":
            stream = self._group_batches(slot, slots)
        else:
            order_seed = hash((self.seed, self.epoch)) & 0xFFFFFFFF if self.shuffle else None
            stream = read_parts(slot_plan(self.shards, slot, slots, order_seed), self.strict, self._decode,
                                required_members(self.manifest))
            if self.batches == "pairs":
                stream = self._pair_batches(stream, slot, slots)
            else:
                if self.shuffle:
                    rng = random.Random(hash((self.seed, self.epoch, slot)))
                    stream = wds.filters.shuffle(self.shuffle, self.shuffle, rng=rng)(stream)
                if self.batch_size:
                    stream = wds.filters.batched(self.batch_size, collation_fn=collate, partial=self.partial)(stream)
        in_worker = torch.utils.data.get_worker_info() is not None
        value_range = self.transform.value_range if self.dtype == "float32" else None
        for item in stream:
            if not self.batch_size:
                item = as_tensors(item)
            if in_worker and self.batch_size:
                item = handed_over(item, value_range)  # by value, through the worker's pipe (datasets/handover.py)
            elif value_range:
                item["image"] = self.transform.to_float(item["image"])
            else:
                item["image"] = contiguous(item["image"])
            yield item

    def _pair_batches(self, samples: Iterator[dict], slot: int, slots: int) -> Iterator[dict]:
        pairs = pair_samples(samples, self.pair_label)
        if self.shuffle:
            size = -(-self.shuffle // 2)
            pairs = wds.filters.shuffle(size, size, rng=random.Random(hash((self.seed, self.epoch, slot))))(pairs)
        per_slot = self.samples_per_slot(slots)
        wanted = None if per_slot is None else per_slot // self.batch_size * (self.batch_size // 2)
        pairs = exactly(pairs, wanted, random.Random(hash((self.seed, self.epoch, slot, 1))))
        return batched_units(pairs, self.batch_size // 2, collate)

    def group_ranges(self, slot: int, slots: int) -> list[tuple[int, int]]:
        """The (lo, hi) position ranges (within the split) of the whole groups ``slot`` reads this epoch: an
        equal share of groups, contiguous over the natural order rotated by (seed, epoch) when shuffling."""
        steps, per_slot = self.steps, self.groups_per_slot(slots)
        n_groups = sum(s.count for s in self.shards) // steps
        if not per_slot:
            return []
        rotation = random.Random(hash((self.seed, self.epoch)) & 0xFFFFFFFF).randrange(n_groups) if self.shuffle else 0
        first = (rotation + slot * per_slot) % n_groups
        end = first + per_slot
        ranges = [(first * steps, min(end, n_groups) * steps)]
        if end > n_groups:
            ranges.append((0, (end - n_groups) * steps))
        return ranges

    def _group_batches(self, slot: int, slots: int) -> Iterator[dict]:
        samples = read_parts(range_parts(self.shards, self.group_ranges(slot, slots)), self.strict, self._decode,
                             required_members(self.manifest))
        groups = sequence_group_samples(samples, self.steps)
        if self.shuffle:
            size = -(-self.shuffle // self.steps)
            groups = wds.filters.shuffle(size, size, rng=random.Random(hash((self.seed, self.epoch, slot))))(groups)
        return batched_units(groups, self.batch_size // self.steps, collate, partial=self.partial)

    def __len__(self) -> int:
        """Items (batches with batch_size, else samples) this process yields per epoch, outside DataLoader."""
        n = self.epoch_batches() if self.batch_size else self.epoch_samples()
        if n is None:
            raise TypeError("length unknown: these shards have no manifest with sample counts")
        return n


def load_shards(source, *, batch_size: int | None = None, shuffle: int = 0, seed: int = 0,
                value_range: str = "-1,1", size: int | None = None, flip: bool = False,
                partial: bool = False, strict: bool = False, batches: str = "plain", pair_label: str = "identity",
                holdout: float = 0.0, split: str = "train", dtype="float32") -> ShardStream:
    """Stream a shard set for ``torch.utils.data.DataLoader`` (use ``batch_size=None`` there).

    source: a shard-set directory, a brace pattern (``dir/cuboids-{000000..000099}.tar``), a URL webdataset
    can open (``https://…``, ``pipe:…``), or a list of these. batch_size: collate batches in the workers
    (None yields single samples). shuffle: shuffle-buffer size (0 keeps the order: shards in order, each slot
    its contiguous range). value_range "-1,1" (tanh decoders) or "0,1". size: resize images on the fly.
    flip: random horizontal flips. partial: keep a last short batch per worker (off: every batch is full).
    strict: raise on a damaged shard instead of warning and skipping it.
    batches: "plain", "pairs" (batch_size/2 pairs of different samples sharing ``labels[pair_label]``) or
    "groups" (whole groups of a ``--sequence F --steps K`` render, batch_size a multiple of K); both add
    ``batch["group"]``, each image's pair/group index within the batch. holdout: the fraction of the set (its
    tail, in manifest order; whole groups in groups mode) held out for validation; split: "train" streams the
    rest, "validation" the held-out tail. dtype: "float32" (the default: images in ``value_range``, what a model
    takes) or "uint8" (0-255, contiguous (N, 3, H, W); a quarter of the bytes to move, for a model that converts
    on its device: ``images.to(device).float().mul_(2 / 255).sub_(1)`` is ``load_shards``' own "-1,1" float;
    torch.float32 / torch.uint8 are taken too).
    """
    shards, manifest = resolve_shards(source)
    transform = ImageTransform(size=size, flip=flip, value_range=value_range)
    if isinstance(dtype, torch.dtype):
        dtype = {torch.float32: "float32", torch.uint8: "uint8"}.get(dtype, str(dtype))
    return ShardStream(shards, manifest, transform, shuffle, seed, batch_size, partial, strict, batches=batches,
                       pair_label=pair_label, holdout=holdout, split=split, dtype=dtype)
