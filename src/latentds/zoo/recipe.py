"""Recipes: what ``latentds train`` runs, as TOML mapped onto frozen dataclasses.

    description = "one line for `latentds zoo`"
    [model]              # family and its config fields (see the family's Config dataclass)
    family = "vae"
    latent_dim = 128
    [data]               # DataConfig
    [train]              # TrainConfig; its optimiser fields are every group's defaults
    [train.groups.discriminator]   # OptimConfig fields for one parameter group of a multi-optimiser family
    lr = 2e-4

``zoo/NAME`` names the packaged ``latentds/zoo/recipes/NAME.toml``; any path to a TOML file works too.
``--set section.key=value`` overrides a field (the value is read as TOML, else taken as a string); nested tables
too: ``--set train.groups.discriminator.lr=1e-4``. A recipe is checked when it is loaded, without building its
model: the model section against the family's config (``zoo.base.family_config``), every range, and
[train.groups] against the parameter groups the family declares (``Capabilities.groups``).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from latentds.datasets.transforms import RANGES
from latentds.errors import InvalidParameterError
from latentds.zoo.config import from_dict, to_dict


BATCHES = ("plain", "pairs", "groups")
SCHEDULES = ("cosine", "constant", "step")
OPTIMIZERS = ("adam", "adamw")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class DataConfig:
    shards: str = ""  # a shard-set directory, brace pattern or URL; `--data` sets it
    value_range: str = "-1,1"
    shuffle: int = 1000  # shuffle-buffer size per DataLoader worker
    flip: bool = False
    num_workers: int = 2
    batches: str = ""  # "plain", "pairs" or "groups" ("": what the model family trains on)
    pair_label: str = "identity"  # pairs: the label two samples of a pair share
    holdout: float = 0.0  # the last fraction of the set, held out: its loss is logged per epoch as val/...

    def check(self) -> None:
        _require(self.value_range in RANGES, f"data.value_range must be one of {', '.join(repr(r) for r in RANGES)}",
                 self.value_range)
        _require(self.batches in ("",) + BATCHES, f"data.batches must be one of {', '.join(BATCHES)}",
                 self.batches)
        _require(self.num_workers >= 0, "data.num_workers must be 0 or more", self.num_workers)
        _require(self.shuffle >= 0, "data.shuffle must be 0 or more", self.shuffle)
        _require(0 <= self.holdout < 1, "data.holdout must be from 0 to below 1", self.holdout)


@dataclass(frozen=True)
class OptimConfig:
    """One optimiser: every group gets the recipe's [train] values, then the family's defaults for the group,
    then [train.groups.GROUP]."""

    optimizer: str = "adam"  # "adam" or "adamw"
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" (to 0 over the run), "constant", or "step" (x decay_factor at decay_at)
    warmup_steps: int = 0  # linear warm-up before the schedule
    decay_at: float = 0.75  # "step": the fraction of the run after which the LR is multiplied by decay_factor
    decay_factor: float = 0.1

    def check(self, where: str) -> None:
        _require(self.optimizer in OPTIMIZERS, f"{where}.optimizer must be one of {', '.join(OPTIMIZERS)}",
                 self.optimizer)
        _require(self.lr > 0 and math.isfinite(self.lr), f"{where}.lr must be positive and finite", self.lr)
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                 f"{where}.betas must be two numbers in [0, 1)", list(self.betas))
        _require(self.weight_decay >= 0 and math.isfinite(self.weight_decay),
                 f"{where}.weight_decay must be a number, 0 or more", self.weight_decay)
        _require(self.schedule in SCHEDULES, f"{where}.schedule must be one of {', '.join(SCHEDULES)}",
                 self.schedule)
        _require(self.warmup_steps >= 0, f"{where}.warmup_steps must be 0 or more", self.warmup_steps)
        _require(0 < self.decay_at < 1, f"{where}.decay_at must be a fraction of the run, above 0 and below 1",
                 self.decay_at)
        _require(0 < self.decay_factor <= 1, f"{where}.decay_factor must be above 0, at most 1", self.decay_factor)


OPTIM_FIELDS = tuple(f.name for f in dataclasses.fields(OptimConfig))


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    max_steps: int = 0  # stop after this many optimisation steps (0: no limit)
    batch_size: int = 64  # images per batch and rank (pairs: 2 per pair; groups: steps per group)
    optimizer: str = "adam"  # "adam" or "adamw"
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" (to 0 over the run), "constant", or "step" (x decay_factor at decay_at)
    warmup_steps: int = 0
    decay_at: float = 0.75
    decay_factor: float = 0.1
    groups: dict = field(default_factory=dict)  # per parameter group: {group: {OptimConfig field: value}}
    grad_clip: float = 0.0  # max gradient norm (0: off)
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
    precision: str = "auto"  # "auto" (bf16/fp16 autocast on CUDA, fp32 on CPU), "fp32", "bf16", "fp16"
    log_every: int = 10  # steps between lines of metrics.jsonl
    checkpoint_every: int = 200  # steps between checkpoints (and at every epoch's end)
    sample_every_epoch: bool = True  # loss curve, reconstruction and sample grids at each epoch's end
    log: str = "jsonl"  # "jsonl" (metrics.jsonl) or "tensorboard" (also TensorBoard scalars and image grids)

    def check(self) -> None:
        _require(self.epochs >= 1, "train.epochs (--epochs) must be at least 1", self.epochs)
        _require(self.max_steps >= 0, "train.max_steps (--max-steps) must be 0 (no limit) or more", self.max_steps)
        _require(self.batch_size >= 1, "train.batch_size (--batch-size) must be at least 1", self.batch_size)
        _require(self.grad_clip >= 0, "train.grad_clip must be 0 (off) or more", self.grad_clip)
        _require(0 <= self.seed <= MAX_SEED, f"train.seed must be from 0 to {MAX_SEED}", self.seed)
        _require(self.precision in PRECISIONS, f"train.precision must be one of {', '.join(PRECISIONS)}",
                 self.precision)
        _require(self.log_every >= 1, "train.log_every must be at least 1", self.log_every)
        _require(self.checkpoint_every >= 1, "train.checkpoint_every must be at least 1", self.checkpoint_every)
        _require(self.log in ("jsonl", "tensorboard"), "train.log must be jsonl or tensorboard", self.log)
        self.optim().check("train")
        for group, settings in self.groups.items():
            _require(isinstance(settings, dict), f"train.groups.{group} must be a table of optimiser settings",
                     settings)
            self.optim(group).check(f"train.groups.{group}")

    def optim(self, group: str | None = None, family_defaults: dict | None = None) -> OptimConfig:
        """The optimiser settings of ``group``: [train], then the family's defaults, then [train.groups.GROUP]."""
        base = {k: getattr(self, k) for k in OPTIM_FIELDS}
        own = self.groups.get(group, {}) if group else {}
        return from_dict(OptimConfig, {**base, **(family_defaults or {}), **own},
                         where=f"train.groups.{group}" if group else "train")


def _require(ok: bool, message: str, value) -> None:
    if not ok:
        raise InvalidParameterError(f"{message} (got {value!r})")


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    model: dict = field(default_factory=dict)
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()

    def to_toml(self) -> str:
        """The recipe as TOML text (what a run saves as recipe.toml)."""
        import tomli_w  # noqa: PLC0415

        return tomli_w.dumps({"description": self.description, "model": self.model,
                              "data": to_dict(self.data), "train": to_dict(self.train)})


def recipe_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("latentds.zoo.recipes").iterdir() if p.name.endswith(".toml"))


def recipe_source(name: str) -> tuple[str, str]:
    """(recipe name, TOML text) for ``zoo/NAME`` or a path to a TOML file."""
    if name.startswith("zoo/"):
        short = name[4:]
        file = resources.files("latentds.zoo.recipes") / f"{short}.toml"
        if not file.is_file():
            raise InvalidParameterError(f"no packaged recipe {name!r}; choose one of: "
                                        f"{', '.join('zoo/' + n for n in recipe_names())}, or a path to a .toml file")
        return short, file.read_text(encoding="utf-8")
    path = Path(name)
    if not path.is_file():
        raise InvalidParameterError(f"recipe {name} does not exist: give zoo/NAME (see `latentds zoo`) or a .toml file")
    return path.stem, path.read_text(encoding="utf-8")


def load_recipe(name: str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """The recipe ``name`` (``zoo/NAME`` or a TOML path) with ``section.key=value`` overrides applied."""
    short, text = recipe_source(name)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidParameterError(f"recipe {name} is not valid TOML: {e}") from None
    for item in overrides:
        _apply_override(raw, item)
    return recipe_from_dict(short, raw, where=f"recipe {name}")


def recipe_from_dict(name: str, raw: dict, where: str = "recipe") -> Recipe:
    unknown = [k for k in raw if k not in ("description", "model", "data", "train")]
    if unknown:
        raise InvalidParameterError(f"unknown key {unknown[0]!r} in {where}; "
                                    "valid keys: data, description, model, train")
    model = dict(raw.get("model", {}))
    if "family" not in model:
        raise InvalidParameterError(f"{where} has no model.family; add one, e.g. family = \"vae\"")
    from latentds.zoo.base import family_config  # noqa: PLC0415  (validates the model section against its config)

    family, config = family_config(model["family"], **model)  # the config checked; no model built
    recipe = Recipe(name=name, description=str(raw.get("description", "")), model=model,
                    data=from_dict(DataConfig, raw.get("data", {}), where=f"{where} [data]"),
                    train=from_dict(TrainConfig, raw.get("train", {}), where=f"{where} [train]"))
    check(recipe, family, config)
    return recipe


def check(recipe: Recipe, family, config=None) -> None:
    """Every value of the recipe in range, and its [train.groups] the parameter groups ``family`` (a model, or its
    class with the model's ``config``) declares: InvalidParameterError naming the first that is not."""
    from latentds.zoo.capabilities import capabilities_of  # noqa: PLC0415

    recipe.data.check()
    recipe.train.check()
    declared = capabilities_of(family) if config is None else family.capabilities_for(config)
    groups = list(declared.groups)
    unknown = [g for g in recipe.train.groups if g not in groups]
    if unknown:
        raise InvalidParameterError(f"train.groups.{unknown[0]}: {family.family} has no parameter group "
                                    f"{unknown[0]!r}; its groups: {', '.join(groups)}")


def _apply_override(raw: dict, item: str) -> None:
    key, sep, text = item.partition("=")
    path = [part.strip() for part in key.split(".")]
    if not sep or len(path) < 2 or path[0] not in ("model", "data", "train") or not all(path):
        raise InvalidParameterError(f"--set {item!r}: write section.key=value, with section model, data or train")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    table = raw
    for part in path[:-1]:
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise InvalidParameterError(f"--set {item!r}: {part} is a value, not a table")
    table[path[-1]] = value


def with_options(recipe: Recipe, **train_options) -> Recipe:
    """The recipe with first-class CLI options (epochs, max_steps, batch_size, device, log) applied when not
    None."""
    given = {k: v for k, v in train_options.items() if v is not None}
    train = from_dict(TrainConfig, {**to_dict(recipe.train), **given}, where="options")
    train.check()
    return replace(recipe, train=train)
