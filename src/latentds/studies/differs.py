""""What differs from the published setting", generated: each knob a study's ``[published]`` table names, compared
with the value every run uses at the chosen scale.

    [published]                    # the source document's settings
    "train.epochs" = 50            # a run's train option (epochs, batch_size) or recipe key (train.lr ...)
    "model.latent_dim" = 128       # a recipe key as --set names it (the run's set, else the recipe's default)
    "data.varied.n" = 500000       # a field of one of the study's [data] entries
A run may carry its own ``published`` table (merged over the study's) where its document's setting differs.
The recipe defaults are read from the recipe's TOML text, so nothing heavy is imported.
"""

from __future__ import annotations

import tomllib

from latentds.studies.study import Run, Study


def run_value(study: Study, run: Run, key: str):
    """The value ``key`` has for ``run`` (None where neither the run, its data nor its recipe sets it)."""
    section, _, rest = key.partition(".")
    if section == "data" and rest.split(".")[0] in study.data:
        name, _, field = rest.partition(".")
        return study.data[name].get(field)
    if section == "train" and rest in run.train:
        return run.train[rest]
    if key in run.sets:
        return run.sets[key]
    from latentds.zoo.recipe import recipe_source  # noqa: PLC0415  (TOML text only)

    raw = tomllib.loads(recipe_source(run.recipe)[1])
    value = raw.get(section, {})
    for part in rest.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def differences(study: Study) -> list[dict]:
    """[{"key", "ours", "published", "runs"}]: every published setting some run does not use, runs grouped."""
    found: dict[tuple, list[str]] = {}
    for run in study.runs:
        for key, published in (study.published | run.published).items():
            parts = key.split(".")
            if parts[0] == "data" and parts[1] in study.data and parts[1] != run.data:
                continue  # a setting of data this run does not train on
            ours = run_value(study, run, key)
            if ours != published:
                found.setdefault((key, repr(ours), repr(published)), []).append(run.name)
    return [{"key": key, "ours": eval_repr(ours), "published": eval_repr(published), "runs": runs}
            for (key, ours, published), runs in found.items()]


def eval_repr(text: str):
    import ast  # noqa: PLC0415

    return ast.literal_eval(text)


def markdown(rows: list[dict], all_runs: int) -> list[str]:
    if not rows:
        return []
    lines = ["| setting | ours | published | runs |", "|---|---|---|---|"]
    for row in rows:
        runs = "all" if len(row["runs"]) == all_runs else ", ".join(row["runs"])
        lines.append(f"| `{row['key']}` | {_show(row['ours'])} | {_show(row['published'])} | {runs} |")
    return lines + [""]


def _show(value) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:,}" if isinstance(value, int) else f"{value:g}"
    return "not set" if value is None else str(value)
