"""RenderSpec: everything that determines the bytes of a render, validated, as a frozen dataclass (a kind of shard
set: see latentds.shardsets.spec for what it shares with the others)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from latentds.errors import InvalidParameterError
from latentds.render.factors import PRESETS, check_identities, check_sequence, check_sweep, sequence_factors
from latentds.shardsets.spec import ShardSetSpec

EXTRAS = ("depth", "mask")

# The order of a render manifest's keys (part of its bytes).
MANIFEST_KEYS = ("format", "format_version", "generator", "generator_version", "name", "preset", "description",
                 "summary", "params", "command", "seed", "image_size", "count", "members", "camera", "cuboid",
                 "shards", "factors")


@dataclass(frozen=True)
class RenderSpec(ShardSetSpec):
    """What to render. ``n=None`` takes the preset's default count; ``name`` (the shard prefix) the preset name.
    ``sequence``: one factor or several, comma-joined (a list or tuple is joined); ``identities``: K identities
    (varied preset only), see latentds.render.factors.sample_labels.

    The worker count and engine are not part of it: they never change the bytes.
    """

    generator: ClassVar[str] = "latentds.render"
    manifest_keys: ClassVar[tuple[str, ...]] = MANIFEST_KEYS

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
    sweep: str | None = None  # "random": each sequence group sweeps between random end points
    identity_seed: int | None = None  # identities' chains from (identity_seed, k): another render's identities

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
        self.check()
        unknown = [e for e in self.extras if e not in EXTRAS]
        if unknown:
            raise InvalidParameterError(f"unknown --with item(s) {', '.join(map(repr, unknown))}; choose from: "
                                        f"{', '.join(EXTRAS)}")
        check_sequence(self.preset, self.sequence, self.steps)
        check_identities(self.preset, self.identities, self.identity_seed)
        check_sweep(self.sequence, self.sweep)
        if self.sequence is not None and self.n % self.steps:
            raise InvalidParameterError(f"--n {self.n} is not a whole number of sequences of --steps {self.steps}; "
                                        f"use --n {(self.n // self.steps + 1) * self.steps}")

    @property
    def total(self) -> int:
        return self.n

    def param_fields(self) -> dict:
        fields = {**super().param_fields(), "extras": list(self.extras)}
        if self.identities is None:  # so renders without identities keep the params (and manifest bytes) they had
            del fields["identities"]
        if self.sweep is None:  # likewise renders with whole-range sweeps
            del fields["sweep"]
        if self.identity_seed is None:  # and renders whose identities are their own seed's
            del fields["identity_seed"]
        return fields

    def command(self) -> str:
        """The ``latentds render`` command (without --out) that makes exactly this set."""
        from latentds.render.manifest import render_command  # noqa: PLC0415

        return render_command(self)

    def manifest_fields(self, records: list[dict]) -> dict:
        from latentds.render.manifest import manifest_fields  # noqa: PLC0415

        return manifest_fields(self)

    def card(self, manifest: dict) -> str:
        from latentds.render.manifest import dataset_card  # noqa: PLC0415

        return dataset_card(manifest)
