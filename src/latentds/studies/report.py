"""results.md of a study from its results dict (studies/results.py): the rule, the health of every run, the
findings with both sides' intervals and their source, the tables with floors, design effects and rank tests."""

from __future__ import annotations

from latentds.studies.results import _agreement, _interval, comparable, rank_agreement
from latentds.studies.study import Study


def _health_lines(results: dict) -> list[str]:
    lines = ["## Health", "",
             "Before any verdict, every analysed run must show it trained (gates of `latentds.analysis.health`: "
             "sample diversity and sample colour, reconstruction against a background-coloured and the mean "
             "image, foreground colour against a grey image, decoder sensitivity, the s/z swap grid, active units, "
             "the discriminator's accuracy; docs/studies-method.md gives each threshold). A run fails when any of "
             "its seeds fails a gate.", "", "| run | seeds | status | failed gates (value vs threshold) |",
             "|---|---|---|---|"]
    for name, health in results["health"].items():
        if not health["checked"]:
            continue
        by_gate: dict = {}
        for seed, record in health["seeds"].items():
            for gate in record["failed"]:
                by_gate.setdefault(gate, []).append((seed, record["gates"][gate]))
        details = []
        for gate, failures in by_gate.items():
            first = failures[0][1]
            values = ", ".join("—" if g["value"] is None else f"{g['value']:.3g}" for _, g in failures)
            needs = (f"{first['threshold'][0]} to {first['threshold'][1]}" if first["op"] == "between"
                     else f"{first['op']} {first['threshold']}")
            details.append(f"{gate}: seed {', '.join(s for s, _ in failures)} at {values} (needs {needs}: "
                           f"{first['means']})")
        words = health.get("status") or ("trained" if health["trained"] else "not trained")
        words = words if health["trained"] else f"**{words}**"
        lines.append(f"| {name} | {len(health['seeds'])} | {words} | {'; '.join(details) or '—'} |")
    return lines + [""]


def _finding_lines(results: dict) -> list[str]:
    lines = ["## Findings", ""]
    for f in results["findings"]:
        if f["source"] == "seed":
            source = f"Restates the source document: \"{f['quote']}\""
        else:
            source = f"A literature expectation ({f['reference']}), not a claim of the source document."
        parts = []
        for m in f["measured"]:
            lo, hi = m["ci"]
            text = (f"{m['run']}: `{f['left']}` {_interval(m['left'])} {f['op']} `{f['right']}` "
                    f"{_interval(m['right'])}; difference {m['difference']:.4g} [{lo:.4g}, {hi:.4g}] "
                    f"({'paired by seed' if m['paired'] else 'unpaired'}, counts beyond {m['threshold']:.3g}): "
                    f"{m['outcome']}")
            if m.get("why"):
                text += f" — {m['why']}"
            parts.append(text)
        lines += [f"- **{f['claim']}** — **{f['verdict']}**. {source}"]
        lines += [f"  - {p}" for p in parts] or ["  - no measurement"]
        lines.append("")
    return lines


def _agreement_lines(results: dict) -> list[str]:
    agreement = []
    for t in results["tables"]:
        rows = [r for r in t["rows"] if r["ours"] and r["published"] is not None]
        if not rows:
            continue
        if t.get("not_comparable"):
            agreement.append(f"- {t['title']}: the values do not compare ({t['not_comparable']}); the published "
                             "number is shown beside ours in the table.")
            continue
        if comparable(t):
            untrained = "not measured: its run did not train (see Health)"
            agreement += [f"- {t['title']}, {r['row']}{' / ' + r['column'] if r['column'] else ''}: ours "
                          f"{_interval(r['ours'])} vs published {r['published']:.4g} "
                          f"({untrained if r.get('trained') is False else _agreement(r['ours'], r['published'])})"
                          for r in rows]
            continue
        networks = ", ".join(sorted({r["feature_network"] for r in rows if r["feature_network"]}))
        line = (f"- {t['title']}: the values do not compare (ours in the features of {networks or 'another network'}, "
                f"published in {t['published_features']}); the ranking does: ")
        untrained = [r for r in rows if r.get("trained") is False]
        ranks = rank_agreement({**t, "rows": [r for r in t["rows"] if r.get("trained") is not False]})
        if untrained:
            line += (f"{len(untrained)} of {len(rows)} rows come from runs that did not train (see Health) and are "
                     "left out; ")
        if ranks is None:
            line += ("not measured: fewer than 3 rows to rank." if untrained else "too few rows to rank.")
        else:
            same = "the same" if ranks["best_ours"] == ranks["best_published"] else "not the same"
            line += (f"Spearman's rho between our and the published values over {ranks['n']} rows = "
                     f"{ranks['spearman']:.2f}, one-sided permutation p = {ranks['p_value']:.3f} "
                     f"({'exact over all orders' if ranks['exact'] else 'sampled orders'}); the best row is {same} "
                     f"(ours: {ranks['best_ours']}; published: {ranks['best_published']}).")
        agreement.append(line)
    if agreement:
        return ["## Agreement with the published numbers", ""] + agreement + [""]
    if any(r["published"] for t in results["tables"] for r in t["rows"]):
        return ["## Agreement with the published numbers", "",
                "No run of this scale measured a quantity that has a published number (see \"Not run\").", ""]
    return []


def _table_lines(table: dict) -> list[str]:
    better = {True: " (lower is better)", False: " (higher is better)"}.get(table["lower_is_better"], "")
    lines = [f"## {table['title']}{better}", "", f"Metric `{table['metric']}`. {table['note']}".strip(), ""]
    floor_names = sorted({k for r in table["rows"] for k in r["floors"]})
    networks = any(row["feature_network"] for row in table["rows"])
    header = ["run", "ours: mean [95% interval]"] + floor_names + (["feature network"] if networks else []) + \
        ["published"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table["rows"]:
        label = row["row"] + (f" / {row['column']}" if row["column"] else "")
        if row["trained"] is False:
            label += f" ({row.get('status') or 'not trained'})"
        published = "—" if row["published"] is None else f"{row['published']:.4g}"
        if table.get("published_features") and row["published"] is not None:
            published += f" ({table['published_features']})"
        cells = [label, _interval(row["ours"])] + [f"{row['floors'][k]:.4g}" if k in row["floors"] else "—"
                                                    for k in floor_names]
        cells += ([row["feature_network"] or "—"] if networks else []) + [published]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if floor_names:
        lines += ["Floors: `floor` is the same estimator on what holds nothing (random latents for scores, two "
                  "disjoint real sets for FID, chance for FactorVAE); `background` and `mean_image` are the trivial "
                  "reconstructions (a background-coloured image, the data's mean image).", ""]
    left_out = sorted(r["run"] for r in table["rows"] if r.get("trained") is False)
    trained = len(left_out) < len(table["rows"])
    for factor, effects in (table.get("effects") or {}).items():
        if not trained:
            lines += [f"Effect of `{factor}`: not measured (no run of the design trained).", ""]
            continue
        parts = [_effect(e) for e in effects]
        lines += [f"Effect of `{factor}` (each level minus the mean over the levels, paired by the other factor "
                  f"and seed; 95% interval): " + "; ".join(parts) + "."
                  + (f" Left out, not trained: {', '.join(left_out)}." if left_out else ""), ""]
    return lines


def _effect(e: dict) -> str:
    if e["ci"]:
        return f"{e['level']} {e['effect']:+.4g} [{e['ci'][0]:+.4g}, {e['ci'][1]:+.4g}]"
    return f"{e['level']} {'—' if e['effect'] is None else format(e['effect'], '+.4g')} (too few pairs)"


def results_markdown(study: Study, results: dict, figures: list[str]) -> str:
    lines = [f"# Study `{study.name}` at scale `{results['scale']}`", "", study.description, "",
             f"Reproduces: {study.paper}", "",
             f"Scale `{results['scale']}`: {results['scale_means']}. Seeds: {results['seeds']}.", "",
             "## How verdicts are computed", "", results["rule"], ""]
    if results.get("evaluation"):
        lines += ["## Evaluation data", "", results["evaluation"], ""]
    from latentds.studies.differs import markdown  # noqa: PLC0415

    generated = markdown(results.get("differences", []), len(study.runs))
    if results["differs"] or generated:
        lines += ["## What differs from the published setting", ""]
        if generated:
            lines += ["Each setting the source document states, where a run of this scale uses another value "
                      "(generated from the study file):", ""] + generated
        if results["differs"]:
            lines += [results["differs"], ""]
    lines += _health_lines(results) + _finding_lines(results) + _agreement_lines(results)
    for table in results["tables"]:
        lines += _table_lines(table)
    if results["skipped"]:
        lines += ["## Not run", ""] + [f"- {name}: {why}" for name, why in results["skipped"].items()] + [""]
    if figures:
        lines += ["## Figures (seed 0)", ""] + [f"- [{name}](figures/{name})" for name in figures] + [""]
    lines += ["Each run's full analysis (every probe, with a line of explanation) is in "
              "`runs/RUN/seed-K/analysis/report.html`; every run loads with `latentds.from_pretrained`.", ""]
    return "\n".join(lines)
