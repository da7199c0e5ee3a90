"""The probe registry: each probe is one registered unit that declares what it needs and what its table means.

    @probe("pca", order=20, needs=("encoder", "decoder"), explain="Share of the latent variance ...")
    def probe_pca(ctx): ...   # -> (metrics dict, [(figure file, caption)])

``PROBES`` (a latentds.registry.Registry) holds the registered probes in the order they declare (the order ``run``
runs them by default, the order ``latentds analyze --help`` lists them; a probe without an order comes after
those with one, in registration order). Calling a registered probe first checks its declared needs against the
model and data and raises ``Skip`` with the need's reason when one is missing, so every probe that lacks the same
thing says so in the same words; the function then only checks what is particular to it. The report takes each
table's explanation and the CLI its probe list from here; an unknown probe name is answered with "did you mean".

This module imports nothing heavy. The built-in probes are registered by the modules of ``PROBE_MODULES`` (every
``analysis/probe_*.py``, found by latentds.discovery; the registry imports them on first use), which import nothing
heavy either: torch, scikit-learn and the rest are imported inside the probe functions, so ``latentds analyze
--help`` lists the probes, and a mistyped one is answered, without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from latentds.discovery import PackageModules
from latentds.registry import Registry, qualified_name
from latentds.zoo.capabilities import capabilities_of


class Skip(Exception):
    """A probe that does not apply; the message says why. ``figures`` it wrote all the same go into the report."""

    def __init__(self, reason: str, figures: list[tuple[str, str]] | None = None):
        super().__init__(reason)
        self.figures = list(figures or [])


def _has_decoder(ctx) -> bool:
    return capabilities_of(ctx.model).decoder


def _has_encoder(ctx) -> bool:
    return ctx.codes is not None


def _has_partition(ctx) -> bool:
    return capabilities_of(ctx.model).partitioned


def _has_factors(ctx) -> bool:
    return ctx.codes is not None and ctx.codes.factors is not None


def _has_sequences(ctx) -> bool:
    from latentds.datasets.shards import resolve_shards  # noqa: PLC0415

    try:
        _, manifest = resolve_shards(ctx.options.sequence_data or ctx.data)
    except Exception:  # noqa: BLE001  (unreadable: reading its groups says what is wrong, see Context.sequences)
        return True
    return bool(((manifest or {}).get("params") or {}).get("sequence"))


@dataclass(frozen=True)
class Need:
    """What a probe may need: ``description`` (for the help), ``present(ctx)`` and the skip ``reason`` (formatted
    with ``family``, the model's family) when it is missing."""

    description: str
    present: Callable
    reason: str


# The needs a probe may declare, in the order they are checked (so a model missing two says the first).
NEEDS: dict[str, Need] = {
    "decoder": Need("a decoder (codes -> images)", _has_decoder, "{family} has no decoder"),
    "encoder": Need("an encoder (latents of the data)", _has_encoder,
                    "{family} has no encoder: this probe needs latents of the data"),
    "partition": Need("an s/z partition of the latent (capabilities.partitioned)", _has_partition,
                      "{family} has no s/z partition of its latent"),
    "factors": Need("ground-truth factors (a set whose manifest has a factor table: every render)", _has_factors,
                    "needs ground-truth factors (a shard set whose manifest has a factor table, e.g. any render)"),
    "sequences": Need("a `latentds render --sequence` shard set (--sequence-data)", _has_sequences,
                      "needs a `latentds render --sequence` shard set (--sequence-data)"),
}


@dataclass(frozen=True)
class Probe:
    """A registered probe: ``name``, the function ``run(ctx) -> (metrics, figures)``, its declared ``needs`` (keys
    of NEEDS), ``explain``, the line under its table in the report, and ``order``, its place in the list."""

    name: str
    run: Callable
    needs: tuple[str, ...]
    explain: str
    order: float = math.inf

    def missing(self, ctx) -> str | None:
        """The reason this probe cannot run on ``ctx`` for lack of a declared need, or None."""
        for key, need in NEEDS.items():
            if key in self.needs and not need.present(ctx):
                return need.reason.format(family=getattr(ctx.model, "family", type(ctx.model).__name__))
        return None

    def __call__(self, ctx):
        reason = self.missing(ctx)
        if reason is not None:
            raise Skip(reason)
        return self.run(ctx)


# The modules registering the built-in probes: every analysis/probe_*.py.
PROBE_MODULES = PackageModules("latentds.analysis", prefix="probe_")
PROBES: Registry[Probe] = Registry("probe", discover=PROBE_MODULES, order=lambda p: p.order)


def registered() -> dict[str, Probe]:
    """Every registered probe {name: Probe}, in order (imports PROBE_MODULES the first time; no torch)."""
    return dict(PROBES.items())


def probe(name: str, *, order: float | None = None, needs: tuple[str, ...] | list[str] = (), explain: str):
    """Register the decorated function ``f(ctx) -> (metrics, [(figure, caption)])`` as probe ``name`` in PROBES.
    ``order``: its place among the probes (the built-in ones count in tens; none: after them); ``needs``: what it
    cannot run without (keys of NEEDS), checked before it is called; ``explain``: one line for the report under
    its table. Returns the function unchanged."""
    needs = tuple(needs)
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise ValueError(f"probe {name!r}: unknown need {unknown[0]!r}; choose from: {', '.join(NEEDS)}")
    if not explain or not explain.strip():
        raise ValueError(f"probe {name!r}: give an explanation of its table")

    def register(function: Callable) -> Callable:
        known = PROBES.owner(name)
        if known is not None and known != qualified_name(function):  # the same function again: its module reloaded
            raise ValueError(f"probe {name!r} is registered already (by {known})")
        PROBES.add(name, Probe(name, function, needs, explain.strip(), math.inf if order is None else order),
                   owner=function)
        return function

    return register


def explanation(name: str) -> str:
    """The report's line for probe ``name`` ("" for a table that is no registered probe)."""
    probes = registered()
    return probes[name].explain if name in probes else ""
