"""Recipes: what ``latentds train`` runs, as TOML mapped onto frozen dataclasses.

    description = "one line for `latentds zoo`"
    [model]              # family and its config fields (see the family's Config dataclass)
    family = "vae"
    latent_dim = 128
    [data]               # DataConfig
    [train]              # TrainConfig

``zoo/NAME`` names the packaged ``latentds/zoo/recipes/NAME.toml``; any path to a TOML file works too.
``--set section.key=value`` overrides a field (the value is read as TOML, else taken as a string).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from latentds.errors import InvalidParameterError
from latentds.zoo.config import from_dict, to_dict


@dataclass(frozen=True)
class DataConfig:
    shards: str = ""  # a shard-set directory, brace pattern or URL; `--data` sets it
    value_range: str = "-1,1"
    shuffle: int = 1000  # shuffle-buffer size per DataLoader worker
    flip: bool = False
    num_workers: int = 2


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    max_steps: int = 0  # stop after this many optimisation steps (0: no limit)
    batch_size: int = 64
    optimizer: str = "adam"  # "adam" or "adamw"
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" (to 0 over the run) or "constant", after `warmup_steps` of linear warm-up
    warmup_steps: int = 0
    grad_clip: float = 0.0  # max gradient norm (0: off)
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
    precision: str = "auto"  # "auto" (bf16/fp16 autocast on CUDA, fp32 on CPU), "fp32", "bf16", "fp16"
    log_every: int = 10  # steps between lines of metrics.jsonl
    checkpoint_every: int = 200  # steps between checkpoints (and at every epoch's end)
    sample_every_epoch: bool = True  # loss curve, reconstruction and sample grids at each epoch's end


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    model: dict = field(default_factory=dict)
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()

    def to_toml(self) -> str:
        """The recipe as TOML text (what a run saves as recipe.toml)."""
        lines = [f"description = {_toml(self.description)}", "", "[model]"]
        lines += [f"{k} = {_toml(v)}" for k, v in self.model.items()]
        for section in ("data", "train"):
            lines += ["", f"[{section}]"] + [f"{k} = {_toml(v)}" for k, v in to_dict(getattr(self, section)).items()]
        return "\n".join(lines) + "\n"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


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
    from latentds.zoo.base import create  # noqa: PLC0415  (validates the model section against its config)

    create(model["family"], **model)
    return Recipe(name=name, description=str(raw.get("description", "")), model=model,
                  data=from_dict(DataConfig, raw.get("data", {}), where=f"{where} [data]"),
                  train=from_dict(TrainConfig, raw.get("train", {}), where=f"{where} [train]"))


def _apply_override(raw: dict, item: str) -> None:
    key, sep, text = item.partition("=")
    section, dot, field_name = key.strip().partition(".")
    if not sep or not dot or section not in ("model", "data", "train"):
        raise InvalidParameterError(f"--set {item!r}: write section.key=value, with section model, data or train")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    raw.setdefault(section, {})[field_name] = value


def with_options(recipe: Recipe, **train_options) -> Recipe:
    """The recipe with first-class CLI options (epochs, max_steps, batch_size, device) applied when not None."""
    given = {k: v for k, v in train_options.items() if v is not None}
    return replace(recipe, train=from_dict(TrainConfig, {**to_dict(recipe.train), **given}, where="options"))
