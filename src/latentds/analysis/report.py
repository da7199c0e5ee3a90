"""report.html: one self-contained page (figures embedded as data URIs) with every figure and table; the line under
each probe's table is the explanation it was registered with (latentds.analysis.registry)."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from latentds.analysis.registry import explanation


def _table(rows: dict) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{cells}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)[:400]
    return str(value)


def _encoded(metrics: dict) -> str:
    n = metrics["data"]["n_encoded"]
    if n == 0 and metrics["model"].get("has_encoder") is False:
        return "No images encoded (the model has no encoder: its probes use codes drawn from its prior)"
    return f"{n:,} images encoded"


def write_report(out: Path, metrics: dict, figures: list[tuple[str, str]]) -> Path:
    """Write ``out/report.html`` from the metrics and (figure file in out/figures, explanation) pairs."""
    parts = ["<!doctype html><meta charset='utf-8'><title>latentds analysis</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}img{max-width:100%;"
             "image-rendering:pixelated}table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;"
             "padding:2px 8px;text-align:left;font-size:13px}</style>",
             f"<h1>latentds analysis: {html.escape(metrics['model']['family'])} on "
             f"{html.escape(metrics['data']['source'])}</h1>",
             f"<p>{_encoded(metrics)}; latent dimension {metrics['model']['latent_dim']}. All numbers are also in "
             "<code>metrics.json</code>.</p>"]
    for file, caption in figures:
        data = base64.b64encode((out / "figures" / file).read_bytes()).decode()
        parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(file)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    for probe, values in metrics.items():
        if probe in ("model", "data", "skipped") or not isinstance(values, dict):
            continue
        explain = html.escape(explanation(probe))  # the line each probe was registered with
        parts.append(f"<h2>{html.escape(probe)}</h2><p>{explain}</p>{_table(values)}")
    if metrics.get("skipped"):
        parts.append("<h2>Skipped probes</h2>" + _table(metrics["skipped"]))
    path, partial = out / "report.html", out / ".report.html.partial"
    partial.write_text("\n".join(parts) + "\n", encoding="utf-8")
    os.replace(partial, path)  # a reader never sees half a report
    return path
