"""RenderSpec: everything that determines the bytes of a render, validated, as a frozen dataclass."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from latentds import __version__
from latentds.errors import InvalidParameterError
from latentds.render.factors import PRESETS, check_identities, check_sequence, sequence_factors
from latentds.shardsets.plan import ShardRanges, check_shard_count

EXTRAS = ("depth", "mask")
MIN_SIZE, MAX_SIZE = 8, 1024
MAX_N = 10**9


@dataclass(frozen=True)
class RenderSpec:
    """What to render. ``n=None`` takes the preset's default count; ``name`` (the shard prefix) the preset name.
    ``sequence``: one factor or several, comma-joined (a list or tuple is joined); ``identities``: K identities
    (varied preset only), see latentds.render.factors.sample_labels.

    The worker count and engine are not part of it: they never change the bytes.
    """

    preset: str = "phi"
    n: int | None = None
    size: int = 64
    seed: int = 0
    shard_size: int = 1000
    sequence: str | None = None
    steps: int | None = None
    extras: tuple[str, ...] = field(default=())
    name: str | None = None
    identities: int | None = None

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise InvalidParameterError(f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        # Fill the defaults in, so that two specs meaning the same render compare (and serialise) equal.
        object.__setattr__(self, "n", PRESETS[self.preset].default_n if self.n is None else self.n)
        object.__setattr__(self, "name", self.name or self.preset)
        object.__setattr__(self, "extras", tuple(sorted(set(self.extras))))
        if isinstance(self.sequence, (list, tuple)):
            object.__setattr__(self, "sequence", ",".join(self.sequence))
        if isinstance(self.sequence, str):  # "phi_0, theta_0" and "phi_0,theta_0" are the same render
            object.__setattr__(self, "sequence", ",".join(sequence_factors(self.sequence)))
        self._validate()

    def _validate(self) -> None:
        def bad(msg):
            raise InvalidParameterError(msg)

        if not isinstance(self.n, int) or not 1 <= self.n <= MAX_N:
            bad(f"--n must be a whole number from 1 to {MAX_N:,} (got {self.n})")
        if not isinstance(self.size, int) or not MIN_SIZE <= self.size <= MAX_SIZE:
            bad(f"--size must be from {MIN_SIZE} to {MAX_SIZE} pixels (got {self.size})")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            bad(f"--seed must be a non-negative integer below 2**63 (got {self.seed})")
        if not isinstance(self.shard_size, int) or self.shard_size < 1:
            bad(f"--shard-size must be at least 1 (got {self.shard_size})")
        unknown = [e for e in self.extras if e not in EXTRAS]
        if unknown:
            bad(f"unknown --with item(s) {', '.join(map(repr, unknown))}; choose from: {', '.join(EXTRAS)}")
        check_sequence(self.preset, self.sequence, self.steps)
        check_identities(self.preset, self.identities)
        if self.sequence is not None and self.n % self.steps:
            bad(f"--n {self.n} is not a whole number of sequences of --steps {self.steps}; "
                f"use --n {(self.n // self.steps + 1) * self.steps}")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            bad(f"--name {self.name!r} may hold only letters, digits, '_' and '-'")
        check_shard_count(self.n, self.shard_size)

    def params(self) -> dict:
        """The JSON form recorded in the manifest; two renders with equal params have equal bytes."""
        params = {"generator": "latentds.render", "generator_version": __version__,
                  **asdict(self), "extras": list(self.extras)}
        if self.identities is None:  # so renders without identities keep the params (and manifest bytes) they had
            del params["identities"]
        return params

    @classmethod
    def from_params(cls, params: dict) -> RenderSpec:
        keys = {k: params[k] for k in cls.__dataclass_fields__ if k in params}
        return cls(**{**keys, "extras": tuple(keys.get("extras", ()))})

    def finish(self, records: list[dict]) -> tuple[dict, str]:
        """The manifest and dataset card of the finished render (see latentds.shardsets.producer)."""
        from latentds.render.manifest import build_manifest, dataset_card  # noqa: PLC0415

        manifest = build_manifest(self, records)
        return manifest, dataset_card(manifest)

    def shard_name(self, index: int) -> str:
        return f"{self.name}-{index:06d}.tar"

    def shard_ranges(self) -> ShardRanges:
        """Global sample indices of each shard, in order (a lazy sequence of ranges)."""
        return ShardRanges(self.n, self.shard_size)

    def command(self) -> str:
        """The ``latentds render`` command (without --out) that makes exactly this set."""
        from latentds.render.manifest import render_command  # noqa: PLC0415

        return render_command(self)
