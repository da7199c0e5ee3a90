"""A study's results: every run's metrics and health gathered, tables (mean and 95% interval over seeds beside the
floors and the published number), effects of a table's design, findings restated as measured comparisons with
verdicts an expert would sign (studies/stats.py), written as results.json and results.md."""

from __future__ import annotations

import json
import math
from pathlib import Path

from latentds.studies import stats
from latentds.studies.study import Study

RULE = (f"A finding compares two measured quantities per run. Each run's value is the mean over its seeds; its "
        f"uncertainty combines the seed-to-seed spread and each probe's own sampling error (bootstrap for R^2, "
        f"MIG and FID, binomial for accuracies, the standard error over images for image metrics): "
        f"se = sqrt(sd_seeds^2 / n + mean(se_probe^2) / n). Two runs trained on the same seeds are compared seed "
        f"by seed (paired). The difference is 'beyond its uncertainty' when its whole 95% interval (Student's t, "
        f"n - 1 degrees of freedom) lies beyond the finding's smallest effect that counts (min_effect of the "
        f"right-hand value). A verdict (confirmed / contradicted / no measurable difference) needs at least "
        f"{stats.MIN_SEEDS} seeds on every side; with fewer it is 'indicative (n seeds)'. A run that failed a "
        f"health gate (see Health) is 'not trained' ('samples not trained' where only its prior samples failed and "
        f"its reconstructions passed), and every finding that needs that gate is 'not measured' (a finding about "
        f"reconstructions does not need sample diversity: each finding names the gates it needs).")


def metric(metrics: dict, path: str):
    """The number at a dotted ``path`` of a run's analysis metrics (a list of numbers: its mean; None where
    absent)."""
    return measure(metrics, path)[0]


def measure(metrics: dict, path: str) -> tuple[float | None, float | None]:
    """(value, its probe's standard error) at ``path``: the error is the sibling ``NAME_se``, or derived from a
    sibling 95% interval ``NAME_ci`` (None where the probe records none)."""
    parent, value = None, metrics
    parts = path.split(".")
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return None, None
        parent, value = value, value[part]
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        value = sum(value) / len(value)  # per-step values (e.g. an interpolation's image error): their mean
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None, None
    se = parent.get(f"{parts[-1]}_se")
    ci = parent.get(f"{parts[-1]}_ci")
    if not isinstance(se, (int, float)) and isinstance(ci, list) and len(ci) == 2 and None not in ci:
        se = (ci[1] - ci[0]) / (2 * stats.Z95)
    return float(value), float(se) if isinstance(se, (int, float)) and math.isfinite(se) else None


def floors(metrics: dict, path: str) -> dict:
    """The floors and trivial baselines recorded beside a metric: ``A.floor.LEAF`` for any ancestor A of
    ``path`` (random latents for scores, real-vs-real for FID, chance for FactorVAE), and for image metrics
    ``metrics.baselines.{background,mean_image}.LEAF``."""
    parts = path.split(".")
    found = {}
    for cut in range(len(parts) - 1, 0, -1):
        value = measure(metrics, ".".join(parts[:cut] + ["floor", parts[-1]]))[0]
        if value is not None:
            found["floor"] = value
            break
    if parts[0] == "metrics" and len(parts) == 2:
        for name in ("background", "mean_image"):
            value = measure(metrics, f"metrics.baselines.{name}.{parts[1]}")[0]
            if value is not None:
                found[name] = value
    return found


def run_health(per_seed: dict, out: Path, run_name: str) -> dict:
    """A run's health over its seeds: each seed's gates (the analysis' health probe plus, for adversarial
    families, the discriminator gate from the training log); the run is trained only if every seed is."""
    from latentds.analysis.health import discriminator_gate, overall  # noqa: PLC0415

    seeds = {}
    for seed, metrics in per_seed.items():
        health = metrics.get("health")
        if not isinstance(health, dict):
            continue
        gates = dict(health.get("gates", {}))
        disc = discriminator_gate(out / "runs" / run_name / f"seed-{seed}")
        if disc is not None:
            gates["discriminator"] = disc
        seeds[str(seed)] = {**overall(gates), "gates": gates}
    if not seeds:
        return {"checked": False, "trained": None, "failed": [], "seeds": {}}
    failed = sorted({g for s in seeds.values() for g in s["failed"]})
    measured = {g for s in seeds.values() for g in s["gates"]}
    return {"checked": True, "trained": not failed, "status": status(failed, measured), "failed": failed,
            "seeds": seeds}


def collect(study: Study, scale: str, out: Path, seeds: int, skipped: dict) -> dict:
    """Every run's analysis metrics read from ``out`` (runs/RUN/seed-K/analysis/metrics.json), then assemble()."""
    runs = {}
    for run in study.runs:
        per_seed = {}
        for seed in range(seeds):
            file = out / "runs" / run.name / f"seed-{seed}" / "analysis" / "metrics.json"
            if file.is_file():
                per_seed[seed] = json.loads(file.read_text(encoding="utf-8"))
        runs[run.name] = per_seed
    return assemble(study, scale, runs, seeds, skipped, out)


def assemble(study: Study, scale: str, runs: dict, seeds: int, skipped: dict, out: Path) -> dict:
    """The results dict from {run: {seed: metrics}}: health, tables, findings (``out``: where the runs' training
    logs are, for the discriminator gate)."""
    health = {run.name: run_health(runs.get(run.name, {}), out, run.name) for run in study.runs}
    tables = [_table(study, spec, runs, health) for spec in study.tables]
    findings = [_finding(study, spec, runs, health) for spec in study.findings]
    return {"study": study.name, "scale": scale, "scale_means": study.scales.get(scale, ""), "seeds": seeds,
            "paper": study.paper, "differs": study.differs, "differences": _differences(study), "rule": RULE, "health": health, "tables": tables,
            "findings": findings, "skipped": skipped, "evaluation": study.evaluation,
            "runs": {name: {str(s): m for s, m in per.items()} for name, per in runs.items()}}


def _differences(study: Study) -> list[dict]:
    from latentds.studies.differs import differences  # noqa: PLC0415

    return differences(study)


def _label(run, key: str | None) -> str:
    if not key:
        return run.name
    return str(run.axes.get(key, run.sets.get(key, run.name)))


SAMPLE_GATES = {"sample_diversity", "sample_colour"}


def status(failed: list[str], measured=()) -> str:
    """A run's health in words: "trained"; "samples not trained" where only the prior samples' gates failed and its
    reconstructions passed theirs (``measured``: the gates it was measured on; each finding names the gates it
    needs, so a finding about reconstructions still counts); else "not trained" (a generator without an encoder
    whose samples failed is not trained: samples are all it has)."""
    if not failed:
        return "trained"
    return "samples not trained" if set(failed) <= SAMPLE_GATES and "reconstruction" in measured else "not trained"


def _measured(per_seed: dict, path: str) -> dict:
    return {seed: measure(m, path) for seed, m in per_seed.items()}


def _table(study: Study, spec: dict, runs: dict, health: dict) -> dict:
    rows, cells = [], {}
    for run in study.runs_matching(spec.get("runs", "*")):
        per_seed = runs.get(run.name, {})
        measured = _measured(per_seed, spec["metric"])
        row, column = _label(run, spec.get("rows")), _label(run, spec.get("columns")) if spec.get("columns") else ""
        key = f"{row},{column}" if column else row
        networks = sorted({n for m in per_seed.values() if (n := _feature_network(m, spec["metric"]))})
        floor = {}
        for m in per_seed.values():
            for name, value in floors(m, spec["metric"]).items():
                floor.setdefault(name, []).append(value)
        cells[(row, column)] = {s: v for s, v in measured.items() if v[0] is not None}
        rows.append({"run": run.name, "row": row, "column": column, "ours": stats.summary(measured),
                     "floors": {k: sum(v) / len(v) for k, v in floor.items()},
                     "trained": health.get(run.name, {}).get("trained"),
                     "status": health.get(run.name, {}).get("status"),
                     "published": spec.get("published", {}).get(key), "feature_network": ", ".join(networks) or None})
    table = {"title": spec["title"], "metric": spec["metric"], "lower_is_better": spec.get("lower_is_better"),
             "not_comparable": spec.get("not_comparable"),
             "note": spec.get("note", ""), "published_features": spec.get("published_features"), "rows": rows}
    if spec.get("rows") and spec.get("columns"):
        # a design's effects are measured on the runs that trained: an untrained run's value says nothing about
        # its strategy or schedule (health gates, docs/studies-method.md)
        untrained = {(r["row"], r["column"]) for r in rows if r["trained"] is False}
        kept = {key: value for key, value in cells.items() if key not in untrained}
        table["effects"] = {spec["rows"]: stats.effects(kept, "rows"), spec["columns"]: stats.effects(kept, "columns")}
    return table


def _feature_network(metrics: dict, path: str) -> str | None:
    """The feature network a metric was measured in (the ``feature_network`` beside it, as FID records it)."""
    parent, _, _ = path.rpartition(".")
    value = metrics
    for part in parent.split(".") if parent else []:
        value = value.get(part) if isinstance(value, dict) else None
    return value.get("feature_network") if isinstance(value, dict) else None


def comparable(table: dict) -> bool:
    """Whether our values are on the published scale: False when the table's published numbers were measured in
    another feature network than ours (e.g. Inception vs this study's own CNN); then only the ranking compares."""
    published = (table.get("published_features") or "").lower()
    if not published:
        return True
    ours = {r["feature_network"] for r in table["rows"] if r["ours"] and r["published"] is not None}
    return bool(ours) and all(n and n.lower().startswith(published) for n in ours)


def rank_agreement(table: dict) -> dict | None:
    """How well our values order the rows as the published ones do: Spearman's rho over the rows that have both
    (None for fewer than 3) with its one-sided permutation p-value, and whether the best row (by
    ``lower_is_better``) is the same."""
    pairs = [(r["ours"]["mean"], r["published"], r["row"] + (f" / {r['column']}" if r["column"] else ""))
             for r in table["rows"] if r["ours"] and r["published"] is not None]
    if len(pairs) < 3:
        return None
    ranks = stats.spearman_permutation([p[0] for p in pairs], [p[1] for p in pairs])
    pick = max if table.get("lower_is_better") is False else min  # unset: lower is better (FID, errors)
    best_ours, best_published = pick(pairs, key=lambda p: p[0])[2], pick(pairs, key=lambda p: p[1])[2]
    return {**ranks, "best_ours": best_ours, "best_published": best_published}


MIN_EFFECT = 0.01  # a finding's default smallest difference that counts, relative to the right-hand value


def _untrained(health: dict, names: list[str], gates: list[str] | None = None) -> list[str]:
    """'RUN (gate, gate)' for each of ``names`` that failed one of ``gates`` (None: any gate)."""
    found = []
    for name in names:
        failed = [g for g in health.get(name, {}).get("failed", []) if gates is None or g in gates]
        if failed:
            found.append(f"{name} ({', '.join(failed)})")
    return found


def _finding(study: Study, spec: dict, runs: dict, health: dict) -> dict:
    measured = []
    min_effect = float(spec.get("min_effect", MIN_EFFECT))
    for run in study.runs_matching(spec["runs"]):
        seeds = runs.get(run.name, {})
        other = runs.get(spec["right_run"], {}) if spec.get("right_run") else seeds
        left = _measured(seeds, spec["left"])
        if isinstance(spec["right"], (int, float)):  # a constant: the left-hand value against a fixed number
            right = {seed: (float(spec["right"]), None) for seed in left}
        else:
            right = _measured(other, spec["right"])
        if stats.summary(left) is None or stats.summary(right) is None:
            continue
        name = f"{run.name} vs {spec['right_run']}" if spec.get("right_run") else run.name
        involved = [run.name] + ([spec["right_run"]] if spec.get("right_run") else [])
        comparison = stats.compare(left, right, spec["op"], min_effect)
        untrained = _untrained(health, involved, spec.get("gates"))
        if untrained:
            comparison["outcome"] = "not measured"
            comparison["why"] = f"not trained: {'; '.join(untrained)}"
            comparison["untrained"] = untrained
        measured.append({"run": name, **comparison})
    blocked = list(dict.fromkeys(u for m in measured for u in m.get("untrained", [])))
    if blocked:
        verdict = f"not measured (not trained: {'; '.join(blocked)})"
    else:
        verdict = stats.verdict([m["outcome"] for m in measured], min((m["seeds"] for m in measured), default=0))
    return {"claim": spec["claim"], "source": spec["source"], "quote": spec.get("quote", ""),
            "reference": spec.get("reference", ""), "gates": spec.get("gates"), "left": spec["left"], "op": spec["op"],
            "right": spec["right"],
            "min_effect": min_effect, "measured": measured, "verdict": verdict}


def _interval(summary: dict | None) -> str:
    if summary is None:
        return "—"
    lo, hi = summary["ci"]
    if summary["n"] == 1 and summary["probe_se"] is None:
        return f"{summary['mean']:.4g} (1 seed)"
    return f"{summary['mean']:.4g} [{lo:.4g}, {hi:.4g}] (n={summary['n']})"


def _collect_figures(out: Path) -> list[str]:
    """Seed 0's analysis and last-epoch training figures of every run, copied flat into out/figures/ (RUN-NAME.png)
    so that results.md and its figures travel together."""
    import shutil  # noqa: PLC0415

    target = out / "figures"
    names = []
    for run_dir in sorted((out / "runs").glob("*/seed-0")):
        run = run_dir.parent.name
        epochs = sorted(run_dir.glob("figures/epoch-*-samples.png"))
        for figure in sorted(run_dir.glob("analysis/figures/*.png")) + epochs[-1:]:
            name = f"{run}-{figure.name}"
            target.mkdir(exist_ok=True)
            shutil.copyfile(figure, target / name)
            names.append(name)
    return names


def _agreement(ours: dict, published: float) -> str:
    """Plain words: the published value inside our 95% interval, or how far off, as a ratio."""
    lo, hi = ours["ci"]
    if ours["n"] > 1 and lo <= published <= hi:
        return "inside our 95% interval"
    if ours["n"] == 1 and abs(ours["mean"] - published) <= 0.1 * abs(published):
        return "within 10% (1 seed: no interval)"
    return f"outside: ours is {ours['mean'] / published:.2f}x the published value" if published else "differs"


def _strict(value):
    """``value`` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def write_results(study: Study, out: Path, results: dict) -> None:
    from latentds.studies.report import results_markdown  # noqa: PLC0415

    text = json.dumps(_strict(results), indent=1, default=str, allow_nan=False)  # strict JSON: no NaN / Infinity
    (out / "results.json").write_text(text + "\n", encoding="utf-8")
    figures = _collect_figures(out)
    (out / "results.md").write_text(results_markdown(study, results, figures), encoding="utf-8")
