"""A study's results: every run's metrics gathered, tables (mean +- spread over seeds beside the published number),
findings restated as measured comparisons, written as results.json and results.md."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from latentds.studies.study import Study


def metric(metrics: dict, path: str):
    """The number at a dotted ``path`` of a run's analysis metrics (a list of numbers: its mean; None where
    absent)."""
    value = metrics
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        return sum(value) / len(value)  # per-step values (e.g. an interpolation's image error): their mean
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _summary(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": spread, "n": len(values), "values": values}


def collect(study: Study, scale: str, out: Path, seeds: int, skipped: dict) -> dict:
    runs = {}
    for run in study.runs:
        per_seed = {}
        for seed in range(seeds):
            file = out / "runs" / run.name / f"seed-{seed}" / "analysis" / "metrics.json"
            if file.is_file():
                per_seed[seed] = json.loads(file.read_text(encoding="utf-8"))
        runs[run.name] = per_seed
    tables = [_table(study, spec, runs) for spec in study.tables]
    findings = [_finding(study, spec, runs) for spec in study.findings]
    return {"study": study.name, "scale": scale, "scale_means": study.scales.get(scale, ""), "seeds": seeds,
            "paper": study.paper, "differs": study.differs, "tables": tables, "findings": findings, "skipped": skipped,
            "runs": {name: {str(s): m for s, m in per.items()} for name, per in runs.items()}}


def _label(run, key: str | None) -> str:
    if not key:
        return run.name
    return str(run.axes.get(key, run.sets.get(key, run.name)))


def _table(study: Study, spec: dict, runs: dict) -> dict:
    rows = []
    for run in study.runs_matching(spec.get("runs", "*")):
        per_seed = list(runs.get(run.name, {}).values())
        values = [metric(m, spec["metric"]) for m in per_seed]
        row, column = _label(run, spec.get("rows")), _label(run, spec.get("columns")) if spec.get("columns") else ""
        key = f"{row},{column}" if column else row
        networks = sorted({n for m in per_seed if (n := _feature_network(m, spec["metric"]))})
        rows.append({"run": run.name, "row": row, "column": column, "ours": _summary(values),
                     "published": spec.get("published", {}).get(key), "feature_network": ", ".join(networks) or None})
    return {"title": spec["title"], "metric": spec["metric"], "lower_is_better": spec.get("lower_is_better"),
            "note": spec.get("note", ""), "published_features": spec.get("published_features"), "rows": rows}


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
    (None for fewer than 3), and whether the best row (by ``lower_is_better``) is the same."""
    pairs = [(r["ours"]["mean"], r["published"], r["row"] + (f" / {r['column']}" if r["column"] else ""))
             for r in table["rows"] if r["ours"] and r["published"] is not None]
    if len(pairs) < 3:
        return None
    from scipy.stats import spearmanr  # noqa: PLC0415

    rho = float(spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic)
    pick = max if table.get("lower_is_better") is False else min  # unset: lower is better (FID, errors)
    best_ours, best_published = pick(pairs, key=lambda p: p[0])[2], pick(pairs, key=lambda p: p[1])[2]
    return {"spearman": rho, "n": len(pairs), "best_ours": best_ours, "best_published": best_published}


MIN_EFFECT = 0.01  # a finding's default smallest difference that counts, relative to the right-hand value


def _compare(left: dict, right: dict, op: str, min_effect: float) -> str:
    """"yes" when left op right by more than the noise (2 standard deviations over seeds of either side, and
    ``min_effect`` of the right-hand value), "no" when the opposite holds by that much, else "within noise"."""
    noise = max(2 * left["std"], 2 * right["std"], min_effect * abs(right["mean"]))
    diff = left["mean"] - right["mean"] if op == ">" else right["mean"] - left["mean"]
    return "yes" if diff > noise else "no" if diff < -noise else "within noise"


def _finding(study: Study, spec: dict, runs: dict) -> dict:
    measured = []
    min_effect = float(spec.get("min_effect", MIN_EFFECT))
    for run in study.runs_matching(spec["runs"]):
        seeds = runs.get(run.name, {}).values()
        other = runs.get(spec["right_run"], {}).values() if spec.get("right_run") else seeds
        left = _summary([metric(m, spec["left"]) for m in seeds])
        right = _summary([metric(m, spec["right"]) for m in other])
        if left and right:
            outcome = _compare(left, right, spec["op"], min_effect)
            name = f"{run.name} vs {spec['right_run']}" if spec.get("right_run") else run.name
            measured.append({"run": name, "left": left["mean"], "right": right["mean"], "outcome": outcome,
                             "holds": outcome == "yes"})
    outcomes = {m["outcome"] for m in measured}
    verdict = ("not measured" if not measured else "confirmed" if outcomes == {"yes"}
               else "contradicted" if outcomes == {"no"} else "no measurable difference"
               if outcomes == {"within noise"} else "mixed")
    return {"claim": spec["claim"], "published": spec.get("published", ""), "left": spec["left"], "op": spec["op"],
            "right": spec["right"], "min_effect": min_effect, "measured": measured, "verdict": verdict}


def _fmt(summary: dict | None) -> str:
    if summary is None:
        return "—"
    if summary["n"] == 1:
        return f"{summary['mean']:.4g}"
    return f"{summary['mean']:.4g} ± {summary['std']:.2g} (n={summary['n']})"


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
    """Plain words: within the seeds' spread (or 10% for one seed), or how far off, as a ratio."""
    tolerance = max(2 * ours["std"], 0.1 * abs(published))
    if abs(ours["mean"] - published) <= tolerance:
        return "agrees"
    return f"disagrees: {ours['mean'] / published:.2f}x the published value" if published else "disagrees"


def write_results(study: Study, out: Path, results: dict) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    lines = [f"# Study `{study.name}` at scale `{results['scale']}`", "", study.description, "",
             f"Reproduces: {study.paper}", "",
             f"Scale `{results['scale']}`: {results['scale_means']}. Seeds: {results['seeds']} "
             "(ours: mean ± standard deviation over seeds).", ""]
    if results["differs"]:
        lines += ["## What differs from the published setting", "", results["differs"], ""]
    agreement = []
    for t in results["tables"]:
        rows = [r for r in t["rows"] if r["ours"] and r["published"] is not None]
        if not rows:
            continue
        if comparable(t):
            agreement += [f"- {t['title']}, {r['row']}{' / ' + r['column'] if r['column'] else ''}: ours "
                          f"{r['ours']['mean']:.4g} vs published {r['published']:.4g} "
                          f"({_agreement(r['ours'], r['published'])})" for r in rows]
            continue
        networks = ", ".join(sorted({r["feature_network"] for r in rows if r["feature_network"]}))
        line = (f"- {t['title']}: the values do not compare (ours in the features of {networks or 'another network'}, "
                f"published in {t['published_features']}); the ranking does: ")
        ranks = rank_agreement(t)
        if ranks is None:
            line += "too few rows to rank."
        else:
            same = "the same" if ranks["best_ours"] == ranks["best_published"] else "not the same"
            line += (f"Spearman's rho between our and the published values over {ranks['n']} rows = "
                     f"{ranks['spearman']:.2f} (1: same order, 0: unrelated, -1: reversed); the best row is {same} "
                     f"(ours: {ranks['best_ours']}; published: {ranks['best_published']}).")
        agreement.append(line)
    if agreement:
        lines += ["## Agreement with the published numbers", ""] + agreement + [""]
    elif any(r["published"] for t in results["tables"] for r in t["rows"]):
        lines += ["## Agreement with the published numbers", "",
                  "No run of this scale measured a quantity that has a published number (see \"Not run\").", ""]
    for table in results["tables"]:
        better = {True: " (lower is better)", False: " (higher is better)"}.get(table["lower_is_better"], "")
        lines += [f"## {table['title']}{better}", "", f"Metric `{table['metric']}`. {table['note']}".strip(), ""]
        networks = any(row["feature_network"] for row in table["rows"])
        lines += (["| run | ours | feature network | published |", "|---|---|---|---|"] if networks
                  else ["| run | ours | published |", "|---|---|---|"])
        for row in table["rows"]:
            label = row["row"] + (f" / {row['column']}" if row["column"] else "")
            published = "—" if row["published"] is None else f"{row['published']:.4g}"
            if table.get("published_features") and row["published"] is not None:
                published += f" ({table['published_features']})"
            network = f" {row['feature_network'] or '—'} |" if networks else ""
            lines.append(f"| {label} | {_fmt(row['ours'])} |{network} {published} |")
        lines.append("")
    if results["findings"]:
        lines += ["## Findings", ""]
        for f in results["findings"]:
            numbers = "; ".join(f"{m['run']}: {m['left']:.4g} {f['op']} {m['right']:.4g}? {m['outcome']}"
                                for m in f["measured"]) or "no measurement"
            lines += [f"- **{f['claim']}** — {f['verdict']}. Measured (`{f['left']}` {f['op']} `{f['right']}`; a "
                      f"difference counts beyond {f['min_effect']:.0%} of the right-hand value and 2 standard "
                      f"deviations over seeds): {numbers}." + (f" Published: {f['published']}" if f["published"] else ""),
                      ""]
    if results["skipped"]:
        lines += ["## Not run", ""] + [f"- {name}: {why}" for name, why in results["skipped"].items()] + [""]
    figures = _collect_figures(out)
    if figures:
        lines += ["## Figures (seed 0)", ""] + [f"- [{name}](figures/{name})" for name in figures] + [""]
    lines += ["Each run's full analysis (every probe, with a line of explanation) is in "
              "`runs/RUN/seed-K/analysis/report.html`; every run loads with `latentds.from_pretrained`.", ""]
    (out / "results.md").write_text("\n".join(lines), encoding="utf-8")
