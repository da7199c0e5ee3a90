"""``AnalysisOptions``: every setting of an analysis, one typed, frozen object, read strictly.

    options = AnalysisOptions.from_dict({"probes": ["pca", "umap"], "n": 4000, "dims": [0, 3]})
    run(model, "data/varied", "analysis/vae", options)          # or run(..., probes=["pca", "umap"], n=4000)

Every way in goes through ``from_dict``: the CLI with its flags (``flags=True``: errors name ``--n``, ``--dims``),
a study with its ``analyze`` table (latentds.studies.study: a study sets any option the CLI can), a caller of
``run`` with keywords. An unknown key is an error with "did you mean"; a wrong type, an out-of-range value or an
unknown probe names the key; all of it before anything is encoded. Construction checks the values too
(``AnalysisOptions(n=1)`` is refused), and ``check_model`` what depends on the model (``dims`` within its latent),
which ``run`` calls before any work.

Models are not options: a FID feature model and a labeller are passed to ``run`` beside them (the CLI loads
``--feature-model``; a study loads its ``feature_run`` / ``labeller_run``). Imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Literal

from latentds.errors import InvalidParameterError, UnknownNameError

IMAGES = 1000  # the shared image batch: at most this many of the data's first images (FID uses them all)
SEQUENCE_GROUPS = 3  # the interpolation probe: the first (up to) this many groups of the sequence set
VOTES = ("quick", "reference")  # the FactorVAE score's vote settings (analysis/factorvae_cuboids.py's VOTES)


class OptionError(InvalidParameterError):
    """An option's value is refused: ``str`` names it as a key (``n must be ...``); ``from_dict`` re-spells it."""

    def __init__(self, key: str, rest: str):
        super().__init__(key + rest)
        self.key, self.rest = key, rest


class UnknownOption(OptionError, UnknownNameError):
    """An option names something not registered (a probe): "did you mean" in its message."""


def _at_least(key: str, value, low: int) -> None:
    if value is not None and value < low:
        raise OptionError(key, f" must be at least {low} (got {value})")


@dataclass(frozen=True)
class FactorVAEOptions:
    """Settings of the FactorVAE score (latentds.analysis.factorvae_cuboids.cuboid_factor_vae); None: its default."""

    batch_size: int | None = None
    votes: Literal["quick", "reference"] | None = None  # "quick": 100 / 50 votes; "reference": disentanglement_lib's
    n_train: int | None = None
    n_eval: int | None = None
    n_variance: int | None = None
    seed: int | None = None

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if f.name != "votes":
                _at_least(f"factorvae.{f.name}", getattr(self, f.name), 0 if f.name == "seed" else 1)
        if self.votes is not None and self.votes not in VOTES:
            raise OptionError("factorvae.votes", f" must be one of {', '.join(map(repr, VOTES))} (got {self.votes!r})")

    def given(self) -> dict:
        """The settings given (not None), as keyword arguments of cuboid_factor_vae."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class AnalysisOptions:
    probes: tuple[str, ...] | None = None  # probe names, run in this order [default: every registered probe]
    n: int = 2000  # images to encode (the first n of the data)
    sequence_data: str | None = None  # a `latentds render --sequence` set: the interpolation probe, UMAP overlays
    inception_weights: str | None = None  # local Inception weights: FID in Inception's features
    colour_by: str | None = None  # a factor or label that colours the UMAP and the scatter
    groups: tuple[str, ...] | None = None  # two selections for latent arithmetic (see select), or three
    dims: tuple[int, int] | None = None  # the two latent dimensions of the plain scatter [default: widest two]
    scores_mode: Literal["reference", "fast"] = "reference"  # disentanglement_lib's estimators, or DCI 10 rounds
    factorvae: FactorVAEOptions = FactorVAEOptions()  # the FactorVAE score's settings
    sequence_groups: int = SEQUENCE_GROUPS  # the interpolation probe reads the first this many groups
    images: int = IMAGES  # the shared image batch (FID's real set, and its floor's): at most this many images

    def __post_init__(self):
        if self.probes is not None:
            from latentds.analysis.registry import PROBES  # noqa: PLC0415  (registers the probes; no torch)

            for name in self.probes:
                try:
                    PROBES.get(name)
                except UnknownNameError as e:
                    raise UnknownOption("probes", f": {e}") from None
        _at_least("n", self.n, 2)
        _at_least("sequence_groups", self.sequence_groups, 1)
        _at_least("images", self.images, 1)
        if self.groups is not None and len(self.groups) not in (2, 3):
            raise OptionError("groups", f" takes two selections (and optionally a third: the samples the vector is "
                                        f"added to), got {len(self.groups)}")
        if self.dims is not None and min(self.dims) < 0:
            raise OptionError("dims", f" must be latent dimensions, 0 or more (got {list(self.dims)})")

    @classmethod
    def from_dict(cls, values: dict, *, where: str = "", flags: bool = False,
                  also: tuple[str, ...] | set[str] = ()) -> AnalysisOptions:
        """The options ``values`` set (the others at their defaults), checked. ``where`` prefixes every error;
        ``flags``: errors name CLI flags (``--scores-mode``) rather than keys; ``also``: keys that may stand beside
        the options (a study's ``data``, ``feature_run``, ``labeller_run``), ignored here. A path may be given as
        an os.PathLike, a list as a tuple."""
        from latentds.registry import unknown_name  # noqa: PLC0415
        from latentds.zoo.config import from_dict  # noqa: PLC0415  (imports nothing heavy)

        keys = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in keys and key not in also:
                raise unknown_name("analysis option", key, sorted({*keys, *also}), where=where)
        given = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in values.items() if k in keys}
        try:
            return from_dict(cls, given, where or "options")
        except OptionError as e:
            spelled = "--" + e.key.replace("_", "-") if flags else e.key
            kind = UnknownNameError if isinstance(e, UnknownNameError) else InvalidParameterError
            raise kind(f"{where + ': ' if where else ''}{spelled}{e.rest}") from None

    def to_dict(self) -> dict:
        """The options as plain values (``from_dict`` of it gives them back)."""
        return dataclasses.asdict(self)

    def updated(self, **changes) -> AnalysisOptions:
        """These options with ``changes`` read as ``from_dict`` reads them."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def check_model(self, model) -> None:
        """What depends on the model: ``dims`` must be dimensions of its latent (checked before encoding)."""
        width = model.config.latent_dim
        if self.dims is not None and max(self.dims) >= width:
            raise InvalidParameterError(f"--dims {list(self.dims)}: the latent has {width} dimensions")

