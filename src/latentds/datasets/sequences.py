"""The groups of a ``latentds render --sequence FACTOR[,FACTOR...] --steps K`` shard set, in order.

Each group is K images in which only one factor moves, linearly over its range: the "natural interpolation" that
the analysis compares with linear and spherical latent interpolation, and the one-factor batches a clamped VAE
trains on. With several factors, group g moves the (g mod count)-th; each group's labels name its factor.
Group g is samples g*K .. g*K+K-1, so a few chosen groups are read without reading the whole set.
A group's ``values`` are read from its labels along the moving factor's path in the manifest's factor table
(the accessor latentds.datasets.factors compiles), so nothing here knows how cuboid labels are laid out.
"""

from __future__ import annotations

from functools import partial
from typing import Iterable, Iterator

import torch

from latentds.datasets.factors import MISSING, FactorVector, factor_accessor
from latentds.datasets.shards import decode_sample, read_parts, required_members, resolve_shards
from latentds.datasets.transforms import ImageTransform
from latentds.errors import ShardError


def sequence_groups(source, groups: Iterable[int] | None = None, *, value_range: str = "-1,1",
                    strict: bool = True) -> Iterator[dict]:
    """Yield {"group": g, "factor": name, "values": (K,) float64, "images": (K,3,H,W) float, "labels": [K dicts]}
    for each group of a sequence render (all of them in order, or just ``groups``, in the order given);
    ``factor`` is the one that group moves and ``values`` its value at each step."""
    shards, manifest = resolve_shards(source)
    params = (manifest or {}).get("params", {})
    if not params.get("sequence"):
        raise ShardError(f"{source} is not a --sequence render (its manifest names no sequence factor)")
    steps, total = params["steps"], manifest["count"]
    n_groups = total // steps
    wanted = list(range(n_groups)) if groups is None else list(groups)
    bad = [g for g in wanted if not 0 <= g < n_groups]
    if bad:
        raise ShardError(f"no group {bad[0]} in {source}: it holds groups 0..{n_groups - 1}")
    transform = ImageTransform(value_range=value_range)
    starts = [rec["first_index"] for rec in manifest["shards"]]
    decode = partial(decode_sample, transform=transform, manifest=manifest, factors=FactorVector.of(manifest))
    accessors = {}  # factor name -> its compiled path
    for g in wanted:
        lo, hi = g * steps, (g + 1) * steps
        parts = [(s.url, max(lo, a) - a, min(hi, a + s.count) - max(lo, a))
                 for s, a in zip(shards, starts) if a < hi and lo < a + s.count]
        samples = list(read_parts(parts, strict, decode, required_members(manifest)))
        if len(samples) != steps:
            raise ShardError(f"group {g} of {source} has {len(samples)} of its {steps} samples")
        labels = [s["labels"] for s in samples]
        factor = _group_factor(labels, g, source, params["sequence"])
        if factor not in accessors:
            accessors[factor] = factor_accessor(manifest, factor)
        yield {"group": g, "factor": factor,
               "values": torch.tensor(_swept(labels, accessors[factor], g, factor, source), dtype=torch.float64),
               "images": transform.to_float(torch.stack([s["image"] for s in samples])),
               "labels": labels}


def _group_factor(labels: list[dict], g: int, source, sequence: str) -> str:
    """The factor group ``g`` moves, as its labels say (a multi-factor render moves a different one per group)."""
    factors = {(lab.get("sequence") or {}).get("factor") for lab in labels}
    if factors == {None} and "," not in sequence:  # labels without it: the manifest's one factor
        return sequence
    if len(factors) != 1 or None in factors:
        raise ShardError(f"group {g} of {source} does not name one sequence factor in its labels (found {factors})")
    return factors.pop()


def _swept(labels: list[dict], get, g: int, factor: str, source) -> list[float]:
    """The moving factor's value at each step of a group."""
    values = [get(lab) for lab in labels]
    if any(v is MISSING for v in values):
        raise ShardError(f"group {g} of {source} moves {factor}, which some of its samples lack")
    return [float(v) for v in values]
