"""A study as data: a packaged TOML file naming its data, runs, probes, tables and findings, read strictly.

    description = "one line for `latentds study`"
    paper = "what it reproduces"
    differs = {smoke = "...", cpu = "...", full = "..."}   # how our setting differs from the published one
    [scales]                      # what each scale means (written into results.md)
    smoke = "..."; cpu = "..."; full = "..."
    [data.NAME]                   # a render (RenderSpec fields), or external = true: a set the user gives (--data)
    [[run]]                       # recipe + overrides; matrix expands into one run per combination
    name, recipe, data, set = {key = value}, train = {field = value}, matrix = {key = [values]},
    analyze = {data, feature_run, labeller_run, and any analysis option: probes, n, sequence_data, groups,
    scores_mode, colour_by, dims, factorvae, sequence_groups, images, ...} (the options are those of
    latentds.analysis.options, read by its strict ``from_dict`` as the CLI's flags are; ``sequence_data`` names a
    [data] entry; n defaults to STUDY_N; every analysis runs the ``health`` probe first; ``labeller_run``: a run
    whose ``predict`` labels generated samples for arithmetic; FID is measured in the packaged frozen feature
    network unless ``feature_run`` names another)
    [[table]]                     # one metric per run, mean +- spread over seeds, beside the published number
    title, metric, runs, rows, columns, published = {"row" or "row,column" = number}, lower_is_better, note,
    published_features = "inception" (the feature network of published FIDs: where ours differ, results.md
    compares the ranking, Spearman's rho, not the values), not_comparable = "why the values are on another scale"
    (e.g. pixels in another range: the published number is shown, never compared)
    [[finding]]                   # a claim restated as a measured comparison
    claim, runs, left, op ("<" or ">"), right; source = "seed" with quote = "the source document's words", or
    source = "literature" with reference = "the named paper"; with right_run, ``right`` is read from that run
    (e.g. the same metric without a loss term) instead of from each run matching ``runs``; min_effect (default
    0.01): the smallest difference, relative to the right-hand value, that counts (see studies/stats.py for the
    rule: the difference's 95% interval, seed spread and probe error included, must lie beyond it); gates: the
    health gates the finding needs (default: every gate; e.g. a claim about reconstructions does not need
    sample_diversity)

Held-out evaluation: every run is analysed on data it never trained on. A rendered data entry NAME that a run
analyses gets a twin ``NAME-eval``: the same settings with seed ``seed + EVAL_SEED`` and enough images for the
probes (EVAL_IMAGES(n)); the run's probes read the twin. A render with identities keeps its identities in the
twin (``identity_seed`` = the training seed: new poses, lights and draws of the same colour/count identities,
as the source document's probes classify the characters the model trained on). An external entry NAME gets an
optional external twin ``NAME-eval`` (``--data NAME-eval=DIR``, e.g. a pack of the dataset's test split); without
it the run is analysed on its training images and results.md says so. ``study`` may also be the path of a TOML file in this format.

Any value may be a table keyed by scale, ``n = {smoke = 96, cpu = 10000, full = 10000}``: ``at(value, scale)``
picks the scale's entry.
"""

from __future__ import annotations

import fnmatch
import itertools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

from latentds.errors import InvalidParameterError

if TYPE_CHECKING:
    from latentds.analysis.options import AnalysisOptions

SCALES = ("smoke", "cpu", "full")
_TOP = {"description", "paper", "differs", "published", "scales", "data", "run", "table", "finding"}
_RUN = {"name", "recipe", "data", "set", "train", "matrix", "analyze", "published"}
_TABLE = {"title", "metric", "runs", "rows", "columns", "published", "published_features", "lower_is_better", "note",
          "not_comparable"}
_FINDING = {"claim", "runs", "left", "op", "right", "right_run", "source", "quote", "reference", "min_effect",
            "gates"}
_ANALYZE = ("data", "feature_run", "labeller_run")  # beside the analysis options in a run's analyze table
STUDY_N = 1000  # a study's analyses encode this many images unless their table says n (the CLI's default: 2000)
EVAL_SEED = 1_000_003  # a rendered entry's held-out twin: the same settings with this added to the seed


def eval_images(n: int, images: int | None = None) -> int:
    """Images of a held-out twin for probes encoding ``n``: n, and two disjoint sets of min(n, images) for FID
    and its floor (``images``: the analysis' image batch, IMAGES by default)."""
    from latentds.analysis.options import IMAGES  # noqa: PLC0415  (imports nothing heavy)

    return max(n, 2 * min(n, images or IMAGES))


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
    analyze: dict  # the analyze table as written (scale picked): data, feature_run, labeller_run, options
    axes: dict = field(default_factory=dict)  # the matrix values that made this run
    published: dict = field(default_factory=dict)  # the source document's settings for this run (see differs.py)


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
    evaluation: str = ""  # what the probes read: the held-out twins (see the module docstring)
    published: dict = field(default_factory=dict)  # the source document's settings (studies/differs.py)

    def runs_matching(self, pattern: str) -> list[Run]:
        return [r for r in self.runs if fnmatch.fnmatchcase(r.name, pattern)]


def study_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("latentds.studies.packaged").iterdir()
                  if p.name.endswith(".toml"))


def study_text(name: str) -> str:
    """The TOML text of packaged study ``name``, or of the file ``name`` when it is a path ending in .toml."""
    from pathlib import Path  # noqa: PLC0415

    if name.endswith(".toml") and Path(name).is_file():
        return Path(name).read_text(encoding="utf-8")
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
        for key in ("feature_run", "labeller_run"):  # a run whose model this one's analysis uses
            if r.analyze.get(key) is not None and r.analyze[key] not in names:
                from latentds.registry import unknown_name  # noqa: PLC0415

                raise unknown_name("run", r.analyze[key], names, where=f"study {name} run {r.name} analyze.{key}")
    runs, evaluation = _held_out(runs, data)
    tables = [dict(t) for t in raw.get("table", [])]
    findings = [dict(f) for f in raw.get("finding", [])]
    for t in tables:
        _keys(t, _TABLE, f"study {name} table")
    for f in findings:
        _keys(f, _FINDING, f"study {name} finding")
        if f.get("op") not in ("<", ">"):
            raise InvalidParameterError(f"study {name} finding {f.get('claim')!r}: op must be < or >")
        from latentds.analysis.gates import GATES  # noqa: PLC0415  (a plain table)

        unknown = [g for g in f.get("gates") or [] if g not in GATES]
        if unknown:
            raise InvalidParameterError(f"study {name} finding {f.get('claim')!r}: unknown gate {unknown[0]!r}; "
                                        f"choose from: {', '.join(GATES)}")
        if f.get("source") == "seed" and not f.get("quote") or f.get("source") == "literature" and not \
                f.get("reference") or f.get("source") not in ("seed", "literature"):
            raise InvalidParameterError(f"study {name} finding {f.get('claim')!r}: give source = \"seed\" with the "
                                        "source document's quote, or source = \"literature\" with a reference")
    return Study(name, raw.get("description", ""), raw.get("paper", ""), raw.get("scales", {}), data, runs, tables,
                 findings, at(raw.get("differs", ""), scale), evaluation, dict(raw.get("published", {})))


def _held_out(runs: list[Run], data: dict) -> tuple[list[Run], str]:
    """Runs whose probes read held-out twins of their data (added to ``data``), and the sentence saying so."""
    from dataclasses import replace  # noqa: PLC0415

    needs: dict[str, int] = {}
    for r in runs:
        if r.analyze:
            key = r.analyze.get("data", r.data)
            options = analysis_options(r.analyze)
            needs[key] = max(needs.get(key, 0), eval_images(options.n, options.images))
    said = []
    for key, n in needs.items():
        entry = data[key]
        if entry.get("external"):
            data[f"{key}-eval"] = {"external": True, "optional": True,
                                   "what": f"a held-out pack of {key}'s dataset (e.g. its test split)"}
            said.append(f"`{key}` (external): on `--data {key}-eval=DIR` when given, else on its training images")
            continue
        seed = int(entry.get("seed", 0)) + EVAL_SEED
        twin = {**entry, "n": n, "seed": seed, "name": f"{entry.get('name', key)}-eval"}
        if entry.get("identities"):  # new images of the same identities (those the model was trained on)
            twin["identity_seed"] = int(entry.get("seed", 0))
        data[f"{key}-eval"] = twin
        said.append(f"`{key}`: on `{key}-eval`, the same render settings with seed {seed} ({n:,} images"
                    + (", of the training set's identities" if entry.get("identities") else "") + ")")
    runs = [replace(r, analyze={**r.analyze, "data": f"{r.analyze.get('data', r.data)}-eval"}) if r.analyze else r
            for r in runs]
    evaluation = ("Every probe reads data the model never trained on. " + "; ".join(said) + ".") if said else ""
    return runs, evaluation


def analysis_options(table: dict, where: str = "") -> AnalysisOptions:
    """The AnalysisOptions of a run's ``analyze`` table (its ``data``, ``feature_run`` and ``labeller_run`` left
    aside; n is STUDY_N unless given), read strictly: an unknown key is an error with "did you mean", a bad value
    names its key. ``sequence_data`` is still the name of a [data] entry."""
    from latentds.analysis.options import AnalysisOptions  # noqa: PLC0415  (imports nothing heavy)

    return AnalysisOptions.from_dict({"n": STUDY_N} | table, where=where, also=_ANALYZE)


def _expand(entry: dict, scale: str, study: str) -> list[Run]:
    matrix = entry.get("matrix", {})
    keys = list(matrix)
    combos = list(itertools.product(*(matrix[k] for k in keys))) if keys else [()]
    runs = []
    for combo in combos:
        axes = dict(zip(keys, combo))
        suffix = "".join(f"-{v}" for v in combo)
        sets = {k: at(v, scale) for k, v in entry.get("set", {}).items()} | axes
        analyze = {k: at(v, scale) for k, v in entry.get("analyze", {}).items()}
        analysis_options(analyze, f"study {study} run {entry['name'] + suffix} analyze")  # checked before any work
        runs.append(Run(name=entry["name"] + suffix, recipe=entry["recipe"], data=entry["data"], sets=sets,
                        train={k: at(v, scale) for k, v in entry.get("train", {}).items()}, analyze=analyze,
                        axes=axes, published=dict(entry.get("published", {}))))
    return runs


def _keys(entry: dict, allowed: set, where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise InvalidParameterError(f"unknown key {unknown[0]!r} in {where}; valid keys: {', '.join(sorted(allowed))}")
