"""What a model family can do and what it trains on, declared once per family as one frozen ``Capabilities``:

    class CycleVAE(LatentModel, family="cycle_vae"):
        capabilities = Capabilities(posterior=True, partitioned=True, batches="pairs")

Everything that follows a model's capabilities -- the trainer (batches, optimiser defaults), the model card,
zoo/sizes.py (which passes to run on the meta device) and analysis (which probes apply) -- reads them through
``capabilities_of(model)``; nothing guesses them from a model's methods. This module imports nothing heavy, so
analysis can read them without importing the zoo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

BATCHES = ("plain", "pairs", "groups")
# the class attributes a family declared before Capabilities held them: defining one on a family is an error
FORMER_NAMES = {"has_encoder": "encoder", "has_decoder": "decoder", "is_posterior": "posterior",
                "is_partitioned": "partitioned", "batches": "batches", "group_defaults": "group_defaults"}


@dataclass(frozen=True)
class Capabilities:
    """A family's declared capabilities (the defaults: an encoder and a decoder, no posterior, no partition, plain
    batches, the recipe's optimiser settings for every group)."""

    encoder: bool = True  # ``encode`` works
    decoder: bool = True  # ``decode``, and so ``sample`` and ``reconstruct``, work
    posterior: bool = False  # ``posterior(x) -> (mu, logvar)``: analysis encodes with the posterior means
    partitioned: bool = False  # ``partition() -> {"s": slice, "z": slice}`` over the latent
    groups: tuple[str, ...] = ("model",)  # the names ``parameter_groups`` returns, in update order: declared, so a
    #                         recipe's [train.groups] is checked without building the model
    batches: str = "plain"  # what it trains on: "plain", "pairs" (two samples sharing a label) or "groups" (one
    #                         factor moves); a recipe's data.batches overrides it
    group_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # optimiser settings per group
    #                         over the recipe's [train] (and under its [train.groups.GROUP])

    def __post_init__(self):
        if not self.groups or not all(isinstance(g, str) and g for g in self.groups):
            raise ValueError(f"Capabilities.groups must name at least one parameter group (got {self.groups!r})")
        unknown = sorted(set(self.group_defaults) - set(self.groups))
        if unknown:
            raise ValueError(f"Capabilities.group_defaults names {unknown[0]!r}, not one of groups {self.groups}")
        if self.batches not in BATCHES:
            raise ValueError(f"Capabilities.batches must be one of {', '.join(BATCHES)} (got {self.batches!r})")
        frozen = MappingProxyType({g: MappingProxyType(dict(s)) for g, s in dict(self.group_defaults).items()})
        object.__setattr__(self, "group_defaults", frozen)


DEFAULT = Capabilities()


def capabilities_of(model) -> Capabilities:
    """The capabilities ``model`` declares: a LatentModel's family's ``capabilities``; the defaults for a
    stand-in network that declares none (a test's, or a plain ``nn.Module`` given to a probe)."""
    declared = getattr(model, "capabilities", DEFAULT)
    if not isinstance(declared, Capabilities):
        raise TypeError(f"{type(model).__name__}.capabilities must be a latentds.zoo.capabilities.Capabilities, "
                        f"not {type(declared).__name__}")
    return declared
