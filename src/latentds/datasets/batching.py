"""Streaming stages that turn decoded samples into pair batches or sequence-group batches.

Each stage is a plain generator function in webdataset style: an iterator in, an iterator out. ``ShardStream``
(latentds.datasets.shards) chains them per *slot* (one DataLoader worker of one DDP rank) after reading and
decoding that slot's share of the epoch; nothing here talks to other slots.

Batch layouts (``batch_size`` = N images; every tensor entry of a plain batch is there too):

* ``batches="pairs"``: N/2 pairs of two different samples (different keys) that share the value of one label
  (``labels[pair_label]``, e.g. an identity), laid out [p0a, p0b, p1a, p1b, ...];
  ``batch["group"]`` is a LongTensor (N,) holding the pair index within the batch: 0, 0, 1, 1, 2, 2, ...
  Pairs form as the share streams by: a sample waits in a bounded dict (label value -> the one waiting sample,
  at most ``PENDING`` of them, the oldest dropped first) until a second sample with its value arrives; the two
  make a pair and leave. Pairs are then shuffled as whole units.
* ``batches="groups"`` (a ``latentds render --sequence F --steps K`` set): N/K whole groups of K images in step
  order, one after the other; within a group only one factor moves (the group's labels["sequence"]["factor"]).
  ``batch["group"]`` (N,) is the group index within the batch: 0 (K times), 1 (K times), ...
  Groups are shuffled as whole units; a group never straddles two slots.

The exact-split guarantee. DDP needs every rank to run the same number of steps, or it stalls. Every slot
therefore yields exactly ``ShardStream.epoch_batches(num_workers, world_size) / num_workers`` batches:

* groups: each slot is handed the same number of whole groups (the epoch's groups cut into equal contiguous
  ranges), so it has exactly the groups its batches need; only a damaged shard (ShardWarning) can lose some.
* pairs: a slot's share cannot know in advance how many pairs it will form, so ``exactly`` completes it: when
  the real pairs run out before the slot's count of batches (floor(share / N), as for plain batches), it
  re-draws pairs from a seeded, uniform reservoir of at most ``REUSE_POOL`` pairs this slot already yielded this
  epoch. With labels that pair easily (a few values, or identities rendered close together) few or none are
  reused; with identities scattered over a large set many may be. A slot that forms no pair at all raises
  ShardError.
"""

from __future__ import annotations

import random
from typing import Callable, Iterable, Iterator

import orjson
import torch

from latentds.errors import ShardError

PENDING = 4096  # samples waiting for a partner, per slot
REUSE_POOL = 512  # pairs kept (a uniform reservoir) for re-drawing when a slot's share runs out of pairs


def _hashable(value):
    if isinstance(value, (list, dict)):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return value


def pair_samples(samples: Iterable[dict], pair_label: str, pending: int = PENDING) -> Iterator[list[dict]]:
    """[a, b] for each two different samples with the same ``labels[pair_label]``, as they stream by.

    At most ``pending`` samples wait for a partner (the oldest is dropped when one more arrives). Raises
    ShardError for a sample without the label, and at the end of a non-empty stream that formed no pair.
    """
    waiting: dict = {}
    seen = formed = 0
    for sample in samples:
        seen += 1
        labels = sample["labels"]
        if pair_label not in labels:
            raise ShardError(f"sample {sample['__key__']} ({sample.get('__url__', '')}) has no label "
                             f"{pair_label!r} to pair on; its labels are: {', '.join(sorted(labels)) or 'none'}")
        value = _hashable(labels[pair_label])
        mate = waiting.pop(value, None)
        if mate is not None and mate["__key__"] != sample["__key__"]:
            formed += 1
            yield [mate, sample]
            continue
        waiting[value] = sample
        if len(waiting) > pending:
            del waiting[next(iter(waiting))]
    if seen and not formed:
        raise ShardError(
            f"no two samples of this worker's share ({seen} samples) have the same {pair_label!r} label value, "
            f"so batches='pairs' cannot form a single pair; pair on a label that repeats (e.g. identities: "
            f"`latentds render --varied --identities K` makes data with them)")


def sequence_group_samples(samples: Iterable[dict], steps: int) -> Iterator[list[dict]]:
    """Whole groups (K = ``steps`` samples, in step order) of a ``--sequence`` render streamed in group order.

    A group left incomplete (samples lost to a damaged shard, already reported as ShardWarning) is dropped.
    """
    current: list[dict] = []
    group = None
    for sample in samples:
        seq = sample["labels"].get("sequence")
        if not isinstance(seq, dict):
            raise ShardError(f"sample {sample['__key__']} ({sample.get('__url__', '')}) has no sequence labels: "
                             "batches='groups' needs a `latentds render --sequence F --steps K` set")
        if seq["group"] != group:
            current, group = [], seq["group"]
        if seq["step"] != len(current):  # a gap: this group lost samples
            current, group = [], None
            continue
        current.append(sample)
        if len(current) == steps:
            yield current
            current, group = [], None


def exactly(units: Iterable, n: int | None, rng: random.Random, pool: int = REUSE_POOL) -> Iterator:
    """Exactly ``n`` units: those of ``units`` first, then (when they run out) units re-drawn from a uniform
    reservoir of at most ``pool`` of those already yielded, each pass through it in a fresh seeded order.
    ``n=None`` passes ``units`` through. Fewer than ``n`` only when ``units`` yielded none at all."""
    if n is None:
        yield from units
        return
    kept: list = []
    yielded = 0
    it = iter(units)
    while yielded < n:
        unit = next(it, None)
        if unit is None:
            break
        if len(kept) < pool:
            kept.append(unit)
        else:
            j = rng.randrange(yielded + 1)
            if j < pool:
                kept[j] = unit
        yield unit
        yielded += 1
    while kept and yielded < n:
        order = list(kept)
        rng.shuffle(order)
        for unit in order[: n - yielded]:
            yield unit
            yielded += 1


def batched_units(units: Iterable[list[dict]], per_batch: int, collation_fn: Callable[[list[dict]], dict],
                  partial: bool = False) -> Iterator[dict]:
    """Batches of ``per_batch`` units (lists of samples), flattened and collated, plus ``batch["group"]``:
    a LongTensor with each image's unit index within the batch."""
    batch: list[list[dict]] = []

    def emit():
        out = collation_fn([s for unit in batch for s in unit])
        out["group"] = torch.repeat_interleave(torch.arange(len(batch)), torch.tensor([len(u) for u in batch]))
        return out

    for unit in units:
        batch.append(unit)
        if len(batch) == per_batch:
            yield emit()
            batch = []
    if batch and partial:
        yield emit()
