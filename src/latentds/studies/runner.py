"""``run_study``: render a study's data, train its runs (every seed), analyse them, and write the results.

Output directory (claimed through latentds.shardsets.claim: its lock, and its marker naming the study and scale;
another study or scale is refused):
    data/NAME/                  the rendered shard sets (resumable, byte-identical for the same study and scale),
                                NAME-eval/ their held-out twins, which every probe reads (see studies/study.py)
    runs/RUN/seed-K/            a training run (a loadable model with its card) and its analysis/ (report.html)
    results.md, results.json    tables (ours: mean +- spread over seeds, beside the published number) and findings

Re-running the same command resumes: finished renders, runs (marked by a ``.finished`` file) and analyses are kept;
a run interrupted after its first checkpoint continues from it. A run whose recipe (model, data or train section)
differs from the one the study file gives now is trained again, an analysis whose options differ (recorded in its
``.finished``) is run again: a resumed study never mixes models of an earlier study file with the current one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

from latentds.errors import InvalidParameterError, OutputDirectoryError
from latentds.shardsets.atomic import write_atomic
from latentds.shardsets.claim import claim
from latentds.shardsets.marker import Marker
from latentds.studies.study import Run, Study, analysis_options, load_study

FINISHED = ".finished"
STUDY_FILE = "study.json"  # which study and scale, before the claim marker (read, never written)
STUDY_FILES = ("data/", "runs/", "figures/", "results.md", "results.json")  # what a study writes into --out


def run_study(name: str, out: str | os.PathLike, *, scale: str = "cpu", data: dict[str, str] | None = None,
              seeds: int = 3, device: str | None = None, runs: str | None = None, progress: bool = True) -> dict:
    """Run study ``name`` at ``scale`` into ``out``; ``data`` maps the study's external data names to shard sets
    (a single external entry may be given as {"": path}); ``runs``: a pattern (fnmatch) of the runs to train and
    analyse, the others are listed as not selected. Returns the results dict (also results.json)."""
    from latentds.studies.results import collect, write_results  # noqa: PLC0415
    from latentds.zoo.base import load_pretrained  # noqa: PLC0415

    study = load_study(name, scale)
    if not isinstance(seeds, int) or seeds < 1:
        raise InvalidParameterError(f"--seeds must be at least 1 (got {seeds})")
    out = Path(out)
    selected = study.runs_matching(runs) if runs else study.runs
    if runs and not selected:
        raise InvalidParameterError(f"--runs {runs!r} matches no run of study {study.name}; its runs: "
                                    f"{', '.join(r.name for r in study.runs)}")
    selected = [r for r in study.runs if r in selected or _needed(study, r, selected)]
    with claim_study(out, study.name, scale):  # one study process per --out
        used = {d for r in selected for d in (r.data, r.analyze.get("data"), r.analyze.get("sequence_data")) if d}
        paths, missing = _data(study, out, data or {}, progress, used)
        skipped = {}
        for run in _ordered(study):
            if run not in selected:
                skipped[run.name] = f"not selected (--runs {runs})"
                continue
            if run.data in missing:
                skipped[run.name] = f"needs --data for {missing[run.data]}"
                continue
            if run.analyze.get("data") in missing:  # an external set's held-out twin not given: its training set
                run = replace(run, analyze={**run.analyze, "data": run.data})
            for seed in range(seeds):
                run_dir = train_run(run, seed, out, paths, device, progress)
                model = load_pretrained(run_dir)  # once, for the probes and the card
                metrics = analyze_run(run, model, run_dir, out, paths, progress) if run.analyze else {}
                write_card(study, scale, run, seed, model, run_dir, paths, metrics)  # every run: study, scale, data
        untwinned = [key[:-len("-eval")] for key in missing if key.endswith("-eval") and key[:-5] not in missing]
        if untwinned:
            study = replace(study, evaluation=f"{study.evaluation} " + "; ".join(
                f"`--data {key}-eval` was not given: runs on `{key}` are analysed on their training images"
                for key in untwinned) + ".")
        results = collect(study, scale, out, seeds, skipped)
        write_results(study, out, results)
        return results


def claim_study(out: Path, name: str, scale: str):
    """Claim ``out`` for study ``name`` at ``scale`` (latentds.shardsets.claim): new, empty or this study's own at
    this scale, which is resumed."""
    def mismatch(found: Marker) -> str:
        held = found.identity if isinstance(found.identity, dict) else {}
        return f"{out} holds study {held.get('study')} at scale {held.get('scale')}; choose another --out"

    return claim(out, "study", {"study": name, "scale": scale}, files=STUDY_FILES, recognise=lambda: _legacy(out),
                 mismatch=mismatch)


def _legacy(out: Path) -> Marker | None:
    """A study --out written before the claim marker: its study.json names the study and scale."""
    try:
        held = json.loads((out / STUDY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(held, dict):
        return None
    return Marker("study", {"study": held.get("study"), "scale": held.get("scale")}, files=STUDY_FILES + (STUDY_FILE,))


def _data(study: Study, out: Path, given: dict[str, str], progress: bool,
          used: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(data name -> shard set, external data names not given -> what they are)."""
    from latentds.render import RenderSpec, render_shards  # noqa: PLC0415

    external = [k for k, v in study.data.items() if v.get("external")]
    if "" in given:  # a bare --data PATH: the study's one external entry
        if len(external) != 1:
            raise InvalidParameterError(f"study {study.name} takes --data NAME=PATH with NAME one of: "
                                        f"{', '.join(external) or '(none: it renders all its data)'}")
        given = {external[0]: given.pop("")} | given
    unknown = [k for k in given if k not in external]
    if unknown:
        raise InvalidParameterError(f"study {study.name} has no external data {unknown[0]!r}; "
                                    f"it takes: {', '.join(external) or 'none'}")
    paths, missing = {}, {}
    for key, entry in study.data.items():
        if entry.get("external"):
            if key in given:
                paths[key] = str(given[key])
            else:
                missing[key] = f"{key} ({entry.get('what', 'a shard set')})"
            continue
        if key not in used:  # no selected run trains on it or reads it
            continue
        spec = RenderSpec(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in entry.items()})
        target = out / "data" / key
        render_shards(spec, target, progress=progress)
        paths[key] = str(target)
    return paths, missing


def _needed(study: Study, run: Run, selected: list[Run]) -> bool:
    """Whether a selected run uses ``run``'s model (as its FID feature network or labeller)."""
    return any(run.name in (r.analyze.get("feature_run"), r.analyze.get("labeller_run")) for r in selected)


def _ordered(study: Study) -> list[Run]:
    """Runs whose models others use as feature networks come first."""
    feature = {r.analyze.get(k) for r in study.runs for k in ("feature_run", "labeller_run")}
    return sorted(study.runs, key=lambda r: r.name not in feature)


def train_run(run: Run, seed: int, out: Path, paths: dict, device: str | None, progress: bool) -> Path:
    from latentds.zoo.recipe import load_recipe, with_options  # noqa: PLC0415
    from latentds.zoo.run_directory import CHECKPOINT  # noqa: PLC0415
    from latentds.zoo.trainer import train  # noqa: PLC0415

    run_dir = out / "runs" / run.name / f"seed-{seed}"
    overrides = [f"{k}={json.dumps(v)}" for k, v in run.sets.items()] + [f"train.seed={seed}"]
    recipe = load_recipe(run.recipe, overrides)
    recipe = with_options(recipe, device=device, **{k: v for k, v in run.train.items()})
    recipe = replace(recipe, data=replace(recipe.data, shards=paths[run.data]))
    changed = _settings_changed(run_dir, recipe)
    if changed:  # the study file changed since this run was trained: its model is not the study's any more
        _say(progress, f"{run.name} seed {seed}: its {changed} settings changed since it was trained; training it "
                       "again")
        shutil.rmtree(run_dir)
    if (run_dir / FINISHED).is_file():
        return run_dir
    resume = (run_dir / CHECKPOINT).is_file()
    if run_dir.exists() and not resume:  # killed before its first checkpoint: nothing to keep
        shutil.rmtree(run_dir)
    train(recipe, run_dir, resume=resume, progress=progress)
    (run_dir / FINISHED).write_text("", encoding="utf-8")
    return run_dir


def analyze_run(run: Run, model, run_dir: Path, out: Path, paths: dict, progress: bool) -> dict:
    """The run's probes (kept from an earlier, finished analysis when there is one)."""
    from latentds.analysis import run as analyze  # noqa: PLC0415
    from latentds.zoo.base import load_pretrained  # noqa: PLC0415

    a = run.analyze
    target = run_dir / "analysis"
    fingerprint = json.dumps(a, sort_keys=True, default=str)  # the study's analysis table for this run
    if (target / FINISHED).is_file():
        recorded = (target / FINISHED).read_text(encoding="utf-8")
        if recorded in ("", fingerprint):  # empty: finished by a latentds that did not record its options
            return json.loads((target / "metrics.json").read_text(encoding="utf-8"))
        _say(progress, f"{run_dir.parent.name} {run_dir.name}: its analysis settings changed; analysing it again")
        shutil.rmtree(target)
    options = analysis_options(a)  # checked when the study was loaded
    probes = None if options.probes is None else ("health",) + tuple(p for p in options.probes if p != "health")
    sequence_data = paths[options.sequence_data] if options.sequence_data else None
    options = replace(options, probes=probes, sequence_data=sequence_data)
    models = {}
    if a.get("feature_run"):
        models["feature_model"] = load_pretrained(out / "runs" / a["feature_run"] / "seed-0")
    if a.get("labeller_run"):
        models["labeller"] = load_pretrained(out / "runs" / a["labeller_run"] / "seed-0")
    metrics = analyze(model, paths[a.get("data", run.data)], target, options, progress=progress, **models)
    (target / FINISHED).write_text(fingerprint, encoding="utf-8")
    return metrics


def _settings_changed(run_dir: Path, recipe) -> str | None:
    """Which section ("model", "data" or "train") of a trained run's saved recipe differs from ``recipe`` (the
    device aside: where a model trains does not change what it is), or None (same, or nothing trained yet)."""
    import tomllib  # noqa: PLC0415

    from latentds.zoo.recipe import recipe_from_dict  # noqa: PLC0415

    saved_file = run_dir / "recipe.toml"
    if not saved_file.is_file():
        return None
    try:
        saved = recipe_from_dict(recipe.name, tomllib.loads(saved_file.read_text(encoding="utf-8")),
                                 where=str(saved_file))
    except Exception:  # unreadable: the trainer's resume check reports it with its fix
        return None
    for section in ("model", "data", "train"):
        old, new = getattr(saved, section), getattr(recipe, section)
        if section == "train":
            old, new = replace(old, device=None), replace(new, device=None)
        if old != new:
            return section
    return None


def _say(progress: bool, line: str) -> None:
    if progress:
        print(line, flush=True)


def write_card(study: Study, scale: str, run: Run, seed: int, model, run_dir: Path, paths: dict,
               metrics: dict) -> None:
    """Rewrite the run's model card with the study, scale, seed, the data's manifest hash and its measured
    numbers (the values of the study's tables for this run)."""
    import hashlib  # noqa: PLC0415

    from latentds.studies.results import metric  # noqa: PLC0415
    from latentds.zoo.card import CardInfo, model_card  # noqa: PLC0415

    manifest = Path(paths[run.data]) / "manifest.json"
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16] if manifest.is_file() else "no manifest"
    numbers = {t["metric"]: metric(metrics, t["metric"]) for t in study.tables if run in study.runs_matching(t["runs"])}
    card = CardInfo(
        title=f"{model.family}: study {study.name}, run {run.name}, scale {scale}, seed {seed}",
        recipe=(run_dir / "recipe.toml").read_text(encoding="utf-8"),
        data=f"`{paths[run.data]}` (manifest sha256 {digest}); study `{study.name}` at scale `{scale}`: "
             f"{study.scales.get(scale, '')}",
        metrics={k: v for k, v in numbers.items() if v is not None},
        evaluation={"task": f"latentds study {study.name} ({scale} scale)", "dataset_type": f"latentds/{run.data}",
                    "dataset_name": f"{run.data} of study {study.name}, {scale} scale (manifest sha256 {digest})",
                    "configs": _metric_configs(metrics, numbers)},
    )
    write_atomic(run_dir / "README.md", model_card(model, card))


def _metric_configs(metrics: dict, numbers: dict) -> dict:
    """metric path -> the feature network its value was measured in (FID), where the analysis names one."""
    configs = {}
    for path in numbers:
        parent = metrics
        for part in path.split(".")[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and parent.get("feature_network"):
            configs[path] = f"feature network {parent['feature_network']}"
    return configs
