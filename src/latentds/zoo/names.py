"""The names ``latentds train`` takes from a user, checked before torch is imported: the recipe (``zoo/NAME``),
the model family and every ``--set`` key. A typo is answered in a fraction of a second with "did you mean".

``FAMILY_MODULES`` (a latentds.discovery.PackageModules: every module of zoo/models) is what the family registry
imports on first use (zoo/base.py). Here the families and their config fields are read from the same modules'
source with ``ast`` (classes declared ``class X(Base, family="NAME")``, their ``Config`` dataclass and its bases,
up to ``base.ModelConfig``), so nothing here imports a model module. The full check (types, ranges) still happens
when the recipe is loaded; this one only makes sure every name exists. A test asserts that it agrees with the
imported registry.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import tomllib
from importlib import resources

from latentds.discovery import PackageModules
from latentds.registry import unknown_name

BASE_CONFIG = "ModelConfig"
FAMILY_MODULES = PackageModules("latentds.zoo.models")  # each registers the families it defines


@functools.cache
def family_fields() -> dict[str, tuple[str, ...]]:
    """{family: its config field names}, from the source of zoo/base.py and zoo/models/*.py."""
    base = ast.parse((resources.files("latentds.zoo") / "base.py").read_text(encoding="utf-8"))
    configs: dict[str, tuple[list[str], list[str]]] = {}  # class -> (bases, own annotated fields)
    models: dict[str, tuple[str | None, list[str], str | None]] = {}  # class -> (family, bases, Config name)
    for tree in [base] + [tree for _, tree in FAMILY_MODULES.trees()]:
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
            family = next((k.value.value for k in node.keywords
                           if k.arg == "family" and isinstance(k.value, ast.Constant)), None)
            config = next((s.value.id for s in node.body if isinstance(s, ast.Assign) and isinstance(s.value, ast.Name)
                           and any(isinstance(t, ast.Name) and t.id == "Config" for t in s.targets)), None)
            if node.name == BASE_CONFIG or node.name.endswith("Config"):
                configs[node.name] = (bases, [s.target.id for s in node.body if isinstance(s, ast.AnnAssign)
                                              and isinstance(s.target, ast.Name)])
            else:
                models[node.name] = (family, bases, config)

    def fields_of(config: str) -> list[str]:
        bases, own = configs.get(config, ([], []))
        return [f for b in bases if b in configs for f in fields_of(b)] + own

    def config_of(model: str) -> str:
        family, bases, config = models.get(model, (None, [], None))
        return config or next((config_of(b) for b in bases if b in models), BASE_CONFIG)

    return {family: tuple(dict.fromkeys(fields_of(config_of(name))))
            for name, (family, _, _) in models.items() if family}


def recipe_choices() -> list[str]:
    from latentds.zoo.recipe import recipe_names  # noqa: PLC0415

    return [f"zoo/{n}" for n in recipe_names()]


def check_train_names(recipe: str, overrides: tuple[str, ...] | list[str] = ()) -> None:
    """The recipe name, its model family and every ``--set`` key exist: UnknownNameError (exit 2) with "did you
    mean" for the first that does not. Values are checked later, when the recipe is loaded."""
    from latentds.zoo.recipe import OPTIM_FIELDS, DataConfig, TrainConfig, recipe_source  # noqa: PLC0415

    if recipe.startswith("zoo/") and recipe not in recipe_choices():
        raise unknown_name("packaged recipe", recipe, recipe_choices(),
                           also="or a path to a .toml file (see `latentds zoo`)")
    try:
        raw = tomllib.loads(recipe_source(recipe)[1])
    except tomllib.TOMLDecodeError:
        return  # loading the recipe says what is wrong with it
    families = family_fields()
    for item in overrides:
        key, sep, value = item.partition("=")
        path = [part.strip() for part in key.split(".")]
        if not sep or len(path) < 2:
            continue  # loading the recipe words this mistake
        if path[:2] == ["model", "family"]:
            raw.setdefault("model", {})["family"] = value.strip().strip("\"'")
    family = (raw.get("model") or {}).get("family")
    if isinstance(family, str) and family not in families:
        raise unknown_name("model family", family, sorted(families), where=f"recipe {recipe}")
    sections = {"model": families.get(family, ()),
                "data": tuple(f.name for f in dataclasses.fields(DataConfig)),
                "train": tuple(f.name for f in dataclasses.fields(TrainConfig))}
    for item in overrides:
        key, sep, _ = item.partition("=")
        path = [part.strip() for part in key.split(".")]
        if not sep or len(path) < 2:
            continue
        if path[0] not in sections:
            raise unknown_name("recipe section", path[0], list(sections), where=f"--set {item}")
        if path[0] == "train" and path[1] == "groups" and len(path) == 4:
            if path[3] not in OPTIM_FIELDS:
                raise unknown_name("optimiser setting", path[3], list(OPTIM_FIELDS), where=f"--set {item}")
            continue
        if path[1] not in sections[path[0]]:
            what = f"{family} model setting" if path[0] == "model" else f"{path[0]} setting"
            raise unknown_name(what, path[1], list(sections[path[0]]), where=f"--set {item}")
