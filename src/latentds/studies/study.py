"""A study as data: a packaged TOML file naming its data, runs, probes, tables and findings, read strictly.

    description = "one line for `latentds study`"
    paper = "what it reproduces"
    differs = {smoke = "...", cpu = "...", full = "..."}   # how our setting differs from the published one
    [scales]                      # what each scale means (written into results.md)
    smoke = "..."; cpu = "..."; full = "..."
    [data.NAME]                   # a render (RenderSpec fields), or external = true: a set the user gives (--data)
    [[run]]                       # recipe + overrides; matrix expands into one run per combination
    name, recipe, data, set = {key = value}, train = {field = value}, matrix = {key = [values]},
    analyze = {data, probes, n, sequence_data, feature_run, groups, factorvae}
    [[table]]                     # one metric per run, mean +- spread over seeds, beside the published number
    title, metric, runs, rows, columns, published = {"row" or "row,column" = number}, lower_is_better, note,
    published_features = "inception" (the feature network of published FIDs: where ours differ, results.md
    compares the ranking, Spearman's rho, not the values)
    [[finding]]                   # a published claim restated as a measured comparison
    claim, runs, left, op ("<" or ">"), right, published = "what the paper found"; with right_run, ``right`` is
    read from that run (e.g. the same metric without a loss term) instead of from each run matching ``runs``;
    min_effect (default 0.01): the smallest difference, relative to the right-hand value, that counts (a
    difference within it, or within 2 standard deviations over seeds, is "within noise")

Any value may be a table keyed by scale, ``n = {smoke = 96, cpu = 10000, full = 10000}``: ``at(value, scale)``
picks the scale's entry.
"""

from __future__ import annotations

import fnmatch
import itertools
import tomllib
from dataclasses import dataclass, field
from importlib import resources

from latentds.errors import InvalidParameterError

SCALES = ("smoke", "cpu", "full")
_TOP = {"description", "paper", "differs", "scales", "data", "run", "table", "finding"}
_RUN = {"name", "recipe", "data", "set", "train", "matrix", "analyze"}
_TABLE = {"title", "metric", "runs", "rows", "columns", "published", "published_features", "lower_is_better", "note"}
_FINDING = {"claim", "runs", "left", "op", "right", "right_run", "published", "min_effect"}


def at(value, scale: str):
    """``value`` at ``scale``: its entry when it is a table keyed by scales, else the value itself."""
    if isinstance(value, dict) and value and set(value) <= set(SCALES):
        if scale not in value:
            raise InvalidParameterError(f"no value for scale {scale!r} in {value}")
        return value[scale]
    return value


@dataclass(frozen=True)
class Run:
    """One training run of a study (a matrix entry already expanded)."""

    name: str
    recipe: str
    data: str
    sets: dict  # recipe key -> value (per scale already picked)
    train: dict  # first-class train options: epochs, max_steps, batch_size
    analyze: dict  # data, probes, n, sequence_data, feature_run
    axes: dict = field(default_factory=dict)  # the matrix values that made this run


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    paper: str
    scales: dict
    data: dict  # name -> {render fields} or {"external": True, ...}
    runs: list[Run]
    tables: list[dict]
    findings: list[dict]
    differs: str = ""

    def runs_matching(self, pattern: str) -> list[Run]:
        return [r for r in self.runs if fnmatch.fnmatchcase(r.name, pattern)]


def study_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("latentds.studies.packaged").iterdir()
                  if p.name.endswith(".toml"))


def study_text(name: str) -> str:
    file = resources.files("latentds.studies.packaged") / f"{name}.toml"
    if not file.is_file():
        from latentds.registry import unknown_name  # noqa: PLC0415

        raise unknown_name("study", name, study_names())
    return file.read_text(encoding="utf-8")


def load_study(name: str, scale: str) -> Study:
    """The packaged study ``name`` at ``scale`` (smoke, cpu or full), every entry checked."""
    if scale not in SCALES:
        raise InvalidParameterError(f"--scale must be one of {', '.join(SCALES)} (got {scale!r})")
    raw = tomllib.loads(study_text(name))
    _keys(raw, _TOP, f"study {name}")
    data = {}
    for key, entry in raw.get("data", {}).items():
        data[key] = {k: at(v, scale) for k, v in entry.items()}
    runs = []
    for i, entry in enumerate(raw.get("run", [])):
        _keys(entry, _RUN, f"study {name} run {i}")
        runs += _expand(entry, scale, name)
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise InvalidParameterError(f"study {name} names a run twice: {sorted(n for n in names if names.count(n) > 1)}")
    for r in runs:
        for d in (r.data, r.analyze.get("data", r.data), r.analyze.get("sequence_data")):
            if d is not None and d not in data:
                raise InvalidParameterError(f"study {name} run {r.name} uses data {d!r}, which is not in its [data]")
    tables = [dict(t) for t in raw.get("table", [])]
    findings = [dict(f) for f in raw.get("finding", [])]
    for t in tables:
        _keys(t, _TABLE, f"study {name} table")
    for f in findings:
        _keys(f, _FINDING, f"study {name} finding")
        if f["op"] not in ("<", ">"):
            raise InvalidParameterError(f"study {name} finding {f['claim']!r}: op must be < or >")
    return Study(name, raw.get("description", ""), raw.get("paper", ""), raw.get("scales", {}), data, runs, tables,
                 findings, at(raw.get("differs", ""), scale))


def _expand(entry: dict, scale: str, study: str) -> list[Run]:
    matrix = entry.get("matrix", {})
    keys = list(matrix)
    combos = list(itertools.product(*(matrix[k] for k in keys))) if keys else [()]
    runs = []
    for combo in combos:
        axes = dict(zip(keys, combo))
        suffix = "".join(f"-{v}" for v in combo)
        sets = {k: at(v, scale) for k, v in entry.get("set", {}).items()} | axes
        runs.append(Run(name=entry["name"] + suffix, recipe=entry["recipe"], data=entry["data"], sets=sets,
                        train={k: at(v, scale) for k, v in entry.get("train", {}).items()},
                        analyze={k: at(v, scale) for k, v in entry.get("analyze", {}).items()}, axes=axes))
    return runs


def _keys(entry: dict, allowed: set, where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise InvalidParameterError(f"unknown key {unknown[0]!r} in {where}; valid keys: {', '.join(sorted(allowed))}")
