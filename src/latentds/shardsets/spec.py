"""What a shard set must say about itself to be produced: the producer's contract, the base class that fills most
of it in, and the checks every kind of shard set shares.

``latentds.shardsets.producer.produce_shards(spec, out, write=None)`` needs a ``spec`` meeting ``ProducibleSpec``:

    spec.name                  str, the shard prefix (shards are NAME-000000.tar, ...)
    spec.params()              JSON dict: everything that determines the bytes; equal params = the same set
                               (a directory holding other params is "another dataset"); holds "generator"
    spec.shard_ranges()        Sequence[range]: the global sample indices of each shard (lazy: ShardRanges)
    spec.shard_name(i)         str: the file name of shard i
    spec.finish(records)       (manifest dict, README.md card str) of the finished set, from the shard records
    spec.command()             optional: the CLI command (without --out) that makes it; names how to resume
    spec.samples(i)            only when no ``write`` is given: shard i's WebDataset samples (``__key__`` plus
                               encoded members, see latentds.shardsets.encoders), which the producer writes

and, unless the spec has ``samples``, a ``write(spec, shard, out, on_samples) -> record`` function (module-level,
so worker processes can import it) that writes shard ``shard`` into ``out`` with
``latentds.shardsets.producer.write_tar_shard`` and returns its record. Specs travel to worker processes by
pickle: keep them small frozen dataclasses.

``ShardSetSpec`` is the base of latentds's own kinds (``RenderSpec``, ``PackSpec``): subclass it as a frozen
dataclass with the fields ``name``, ``shard_size`` and ``size`` (image side, or None) plus your own, and write
``total`` (the planned sample count), ``command()``, ``manifest_fields(records)`` and ``card(manifest)`` (and
``samples(i)``); it supplies the shard plan and names, ``params()``, the shared checks, the manifest header
(``HEADER``, in a fixed order) and ``finish``. A third kind of shard set is one such class (tested).
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from latentds import __version__
from latentds.errors import InvalidParameterError
from latentds.shardsets.manifest import FORMAT, FORMAT_VERSION
from latentds.shardsets.plan import ShardRanges, check_shard_count

MIN_SIZE, MAX_SIZE = 8, 1024  # image side in pixels
MAX_N = 10**9  # samples in one set
SEED_LIMIT = 2**63

# The manifest fields every shard set has, in the order a kind that does not choose its own writes them.
HEADER = ("format", "format_version", "generator", "generator_version", "name", "description", "summary", "params",
          "command", "count", "image_size", "members", "shards")

# write(spec, shard, out, on_samples) -> the shard's record (see latentds.shardsets.producer.write_tar_shard)
ShardWriter = Callable[[Any, int, Path, Callable[[int], None] | None], dict]


@runtime_checkable
class ProducibleSpec(Protocol):
    """What ``produce_shards`` reads from a spec (``command`` and ``samples`` are optional; see the module)."""

    name: str

    def params(self) -> dict: ...

    def shard_ranges(self) -> Sequence[range]: ...

    def shard_name(self, index: int) -> str: ...

    def finish(self, records: list[dict]) -> tuple[dict, str]: ...


# --- the checks every kind shares (their messages name the CLI option) ----------------------------------------------

def _bad(message: str):
    raise InvalidParameterError(message)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_count(n, what: str = "--n") -> None:
    if not _whole(n) or not 1 <= n <= MAX_N:
        _bad(f"{what} must be a whole number from 1 to {MAX_N:,} (got {n})")


def check_image_size(size) -> None:
    if not _whole(size) or not MIN_SIZE <= size <= MAX_SIZE:
        _bad(f"--size must be from {MIN_SIZE} to {MAX_SIZE} pixels (got {size})")


def check_seed(seed) -> None:
    if not _whole(seed) or not 0 <= seed < SEED_LIMIT:
        _bad(f"--seed must be a non-negative integer below 2**63 (got {seed})")


def check_shard_size(shard_size) -> None:
    if not _whole(shard_size) or shard_size < 1:
        _bad(f"--shard-size must be at least 1 (got {shard_size})")


def check_name(name) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        _bad(f"--name {name!r} may hold only letters, digits, '_' and '-'")


# --- the base class -------------------------------------------------------------------------------------------------

class ShardSetSpec(abc.ABC):
    """Base of a kind of shard set (subclass it as a frozen dataclass; see the module docstring).

    Class attributes: ``generator`` ("latentds.render": recorded in params and manifest), ``count_option`` (how
    messages name the sample count), ``params_omit`` (fields left out of params: not part of the bytes),
    ``manifest_keys`` (the order of the manifest's keys, part of its bytes; None: ``HEADER``, then the kind's own
    fields in the order ``manifest_fields`` gives them).
    """

    generator: ClassVar[str]
    count_option: ClassVar[str] = "--n"
    params_omit: ClassVar[tuple[str, ...]] = ()
    manifest_keys: ClassVar[tuple[str, ...] | None] = None

    name: str
    shard_size: int
    size: int | None

    # --- what a kind writes ---

    @property
    @abc.abstractmethod
    def total(self) -> int:
        """The number of samples planned (the manifest's ``count`` is what the shards hold)."""

    @abc.abstractmethod
    def command(self) -> str:
        """The CLI command (without --out) that makes exactly this set."""

    @abc.abstractmethod
    def manifest_fields(self, records: list[dict]) -> dict:
        """The manifest's fields beyond those the base fills in (format, format_version, generator,
        generator_version, name, params, command, count, image_size, shards): at least description, summary and
        members (member suffix -> what it holds), plus anything the kind records."""

    @abc.abstractmethod
    def card(self, manifest: dict) -> str:
        """The README.md dataset card (see ``latentds.shardsets.manifest.loading_section`` for its Loading part)."""

    # --- what the base supplies ---

    def check(self) -> None:
        """The checks every shard set shares: count, image size (unless None), seed (if the kind has one), shard
        size, name, and the number of shards. Call it from ``__post_init__`` before the kind's own checks."""
        check_count(self.total, self.count_option)
        if self.size is not None:
            check_image_size(self.size)
        if hasattr(self, "seed"):
            check_seed(self.seed)
        check_shard_size(self.shard_size)
        check_name(self.name)
        check_shard_count(self.total, self.shard_size)

    def param_fields(self) -> dict:
        """The fields recorded in params (the dataclass fields, less ``params_omit``)."""
        return {k: v for k, v in asdict(self).items() if k not in self.params_omit}

    def params(self) -> dict:
        """The JSON form recorded in the manifest and progress file; equal params mean equal bytes."""
        return {"generator": self.generator, "generator_version": __version__, **self.param_fields()}

    def shard_ranges(self) -> ShardRanges:
        """Global sample indices of each shard, in order (a lazy sequence of ranges)."""
        return ShardRanges(self.total, self.shard_size)

    def shard_name(self, index: int) -> str:
        return f"{self.name}-{index:06d}.tar"

    def recorded_command(self) -> str:
        """The command the manifest and card record (``command()`` unless it holds something machine-specific)."""
        return self.command()

    def manifest(self, records: list[dict]) -> dict:
        """The manifest of the finished set: the shared header plus ``manifest_fields``, ordered."""
        fields = {"format": FORMAT, "format_version": FORMAT_VERSION, "generator": self.generator,
                  "generator_version": __version__, "name": self.name, "params": self.params(),
                  "command": self.recorded_command(), "count": sum(r["count"] for r in records),
                  "image_size": self.size, "shards": records}
        fields.update(self.manifest_fields(records))
        missing = [k for k in HEADER if k not in fields]
        if missing:
            raise TypeError(f"{type(self).__name__}.manifest_fields gives no {', '.join(missing)}")
        order = self.manifest_keys or HEADER + tuple(k for k in fields if k not in HEADER)
        unplaced = [k for k in fields if k not in order]
        if unplaced:
            raise TypeError(f"{type(self).__name__}.manifest_keys does not place {', '.join(unplaced)}")
        return {k: fields[k] for k in order if k in fields}

    def finish(self, records: list[dict]) -> tuple[dict, str]:
        """The manifest and dataset card of the finished set (what ``produce_shards`` writes last)."""
        manifest = self.manifest(records)
        return manifest, self.card(manifest)


def spec_problems(spec, write: ShardWriter | None) -> list[str]:
    """What ``spec`` lacks to be produced (with ``write``, or by its own ``samples``); empty when complete."""
    problems = [f"no {what}" for what in ("name", "params", "shard_ranges", "shard_name", "finish")
                if not hasattr(spec, what)]
    if write is None and not callable(getattr(spec, "samples", None)):
        problems.append("no samples(shard) method and no write function given")
    return problems

