"""report.html: one self-contained page (figures embedded as data URIs), rendered with jinja2 from
templates/report.html.j2 (autoescaped: every label, caption, path and reason is text, never markup).

What a reader looks for first comes first: a header table (model, data, probes run and skipped), the key numbers
with their meaning in words (KEY_NUMBERS, those the run measured), and a contents list linking to the sections.
Then one section per probe that ran, in run order: its registered explanation (latentds.analysis.registry), its
figures with their captions, and its numbers (nested tables; a dict of same-shaped rows as one matrix). Last, the
skipped probes with their reasons (and any figures they left). All numbers are also in metrics.json.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

from latentds.analysis.registry import explanation
from latentds.shardsets.atomic import write_atomic

TEMPLATE = "report.html.j2"
TEMPLATES = Path(__file__).with_name("templates")

# (dotted path in metrics.json, name, what it means): the header's key numbers, in this order, those measured.
# "{network}" in a meaning is the FID feature network named beside the number.
KEY_NUMBERS = (
    ("metrics.mse", "Reconstruction error (MSE)",
     "mean squared difference between an image and its reconstruction, pixels in [-1, 1]; 0 is perfect"),
    ("metrics.ssim", "Reconstruction SSIM",
     "structural similarity of each reconstruction to its image, averaged; 1 is identical"),
    ("metrics.pcc", "Reconstruction Pearson r",
     "correlation of each reconstruction's pixels with its image's, averaged; 1 is perfect"),
    ("fid.reconstructions.fid", "FID of reconstructions",
     "Frechet distance between the data and its reconstructions in the features of {network}; 0 means the same "
     "distribution, lower is closer"),
    ("fid.samples.fid", "FID of samples",
     "Frechet distance between the data and samples from the prior in the features of {network}; lower is closer"),
    ("fid.floor.fid", "FID floor (real vs real)",
     "Frechet distance between the data and a disjoint set of real images in the features of {network}: what a "
     "perfect model scores with this many images; FIDs near it are indistinguishable from real data"),
    ("scores.mig", "MIG",
     "mutual information gap: per factor, how much more the best latent dimension tells about it than the second "
     "best, averaged (0 to 1; higher is more disentangled)"),
    ("scores.dci_disentanglement", "DCI disentanglement",
     "how much each latent dimension is about a single factor (0 to 1; higher is more disentangled)"),
    ("scores.dci_completeness", "DCI completeness",
     "how much each factor is held by a single latent dimension (0 to 1)"),
    ("scores.dci_informativeness", "DCI informativeness",
     "held-out accuracy of gradient-boosted trees predicting each factor from the latents, averaged (0 to 1)"),
    ("scores.sap", "SAP",
     "separated attribute predictability: per factor, the gap in predictability between the two most predictive "
     "latent dimensions, averaged (0 to 1)"),
    ("factorvae.factor_vae_eval_accuracy", "FactorVAE score",
     "how often a majority vote names the fixed factor of a batch from its least-varying latent dimension "
     "(0 to 1; chance is one over the number of factors)"),
)
NOT_PROBES = ("model", "data", "skipped", "warnings")  # keys of the metrics that are not a probe's
MATRIX_COLUMNS = 40  # a dict of same-shaped dicts is drawn as one matrix up to this many columns
LIST_ITEMS = 16  # a long list of numbers shows its first this many
FOLDED = ("settings",)  # tables under these keys (estimator settings, versions) start folded
FIGURE_BOX = (560, 560)  # small pixel grids are scaled up by whole multiples (at most 4) to fit about this box


def write_report(out: Path, metrics: dict, figures: dict[str, list[tuple[str, str]]]) -> Path:
    """Write ``out/report.html`` from the metrics (as run() returns them) and each probe's (figure file in
    out/figures, caption) pairs, ``figures[probe]``."""
    import jinja2  # noqa: PLC0415

    out = Path(out)
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    page = environment.get_template(TEMPLATE).render(**_page(out, metrics, figures))
    path = write_atomic(out / "report.html", page)  # a reader never sees half a report
    return path


def _page(out: Path, metrics: dict, figures: dict) -> dict:
    model, data, skipped = metrics["model"], metrics["data"], metrics.get("skipped", {})
    ran = [name for name, values in metrics.items()
           if name not in NOT_PROBES and isinstance(values, dict)]
    sections = [{"name": name, "anchor": f"probe-{name}", "explain": explanation(name),
                 "figures": [_figure(out, *f) for f in figures.get(name, [])], "numbers": _view(metrics[name])}
                for name in ran]
    skips = [{"name": name, "anchor": f"probe-{name}", "reason": reason, "explain": explanation(name),
              "figures": [_figure(out, *f) for f in figures.get(name, [])]} for name, reason in skipped.items()]
    return {"model": model, "data": data, "encoded": _encoded(metrics), "sections": sections, "skipped": skips,
            "key_numbers": _key_numbers(metrics), "checks": _checks(metrics)}


def _checks(metrics: dict) -> list[tuple[str, str]]:
    """(heading, sentence) rows of the header that say how far to trust the numbers: does the model beat trivial
    baselines, which factors were left out as constant, which scores are a fast mode, what libraries warned."""
    rows = []
    recon = metrics.get("metrics")
    if isinstance(recon, dict) and "baselines" in recon:
        from latentds.analysis.baselines import sentence  # noqa: PLC0415

        rows.append(("Does the model work?", sentence(recon)))
    constant = metrics["data"].get("constant_factors")
    if constant:
        rows.append(("Constant factors", f"{len(constant['names'])} left out ({', '.join(constant['names'])}): "
                                         f"{constant['reason']}."))
    settings = _lookup(metrics, "scores.settings") or {}
    if settings.get("mode") == "fast":
        rows.append(("Scores", "FAST MODE (--scores-mode fast): DCI with fewer boosting rounds, which inflates it; "
                               "these scores are for a quick look and must not be compared with published numbers "
                               "(run with --scores-mode reference for those)."))
    if settings.get("n_factors") == 1:
        rows.append(("Scores", "computed on a single varying factor: DCI disentanglement is 1 by construction (every "
                               "dimension can only be about that factor) and MIG / SAP compare dimensions for that "
                               "factor alone; disentanglement needs data where several factors vary (--varied)."))
    for probe, lines in (metrics.get("warnings") or {}).items():
        rows.append((f"Warnings in {probe}", "; ".join(lines)))
    return rows


def _encoded(metrics: dict) -> str:
    n = metrics["data"]["n_encoded"]
    if n == 0 and metrics["model"].get("has_encoder") is False:
        return "no images encoded (the model has no encoder: its probes use codes drawn from its prior)"
    return f"{n:,} images encoded"


def _lookup(metrics: dict, path: str):
    value = metrics
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _key_numbers(metrics: dict) -> list[dict]:
    rows = []
    for path, name, meaning in KEY_NUMBERS:
        value = _lookup(metrics, path)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        network = _lookup(metrics, path.rsplit(".", 1)[0] + ".feature_network") or "the named network"
        rows.append({"name": name, "value": _number(value), "meaning": meaning.format(network=network),
                     "probe": path.split(".")[0], "path": path})
    return rows


def _figure(out: Path, file: str, caption: str) -> dict:
    """A figure as the template shows it: a data URI, and a width that scales small pixel grids up (whole
    multiples, drawn pixelated) so that 16 px images can be seen."""
    from PIL import Image  # noqa: PLC0415

    path = out / "figures" / file
    raw = path.read_bytes()
    with Image.open(path) as image:
        width, height = image.size
    scale = max(1, min(4, FIGURE_BOX[0] // max(width, 1), FIGURE_BOX[1] // max(height, 1)))
    return {"file": file, "caption": caption, "width": width * scale, "pixelated": scale > 1,
            "src": "data:image/png;base64," + base64.b64encode(raw).decode()}


def _number(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return "undefined (NaN)" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _view(value) -> dict:
    """How the template draws a value: {"kind": "text"}, a key/value "table" of views (those under FOLDED keys
    folded), or a "matrix" (a dict of dicts with scalar values, rows by columns; transposed when that makes it
    narrower)."""
    if _scalar(value):
        return {"kind": "text", "text": "" if value is None else _number(value)}
    if isinstance(value, list) and all(_scalar(v) for v in value):
        shown = ", ".join(_number(v) for v in value[:LIST_ITEMS])
        more = f", ... ({len(value)} values)" if len(value) > LIST_ITEMS else ""
        return {"kind": "text", "text": shown + more}
    if isinstance(value, dict):
        inner = list(value.values())
        if inner and all(isinstance(v, dict) and v and all(_scalar(x) for x in v.values()) for v in inner):
            columns = list(dict.fromkeys(k for v in inner for k in v))
            rows = list(value)
            if len(columns) > len(rows) and len(columns) > 8:  # e.g. 5 components x 30 factors: factors as rows
                return {"kind": "matrix", "corner": "", "columns": [str(r) for r in rows],
                        "rows": [(str(c), [_cell(value[r].get(c)) for r in rows]) for c in columns]}
            if len(columns) <= MATRIX_COLUMNS:
                return {"kind": "matrix", "corner": "", "columns": [str(c) for c in columns],
                        "rows": [(str(r), [_cell(value[r].get(c)) for c in columns]) for r in rows]}
        return {"kind": "table", "rows": [(str(k), _view(v)) for k, v in value.items()],
                "folded": [str(k) for k, v in value.items() if k in FOLDED and isinstance(v, dict)]}
    return {"kind": "text", "text": json.dumps(value, default=str)[:400]}


def _cell(value) -> str:
    return "" if value is None else _number(value)
