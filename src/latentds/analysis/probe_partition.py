"""The s/z partition of a partitioned model (e.g. cycle_vae): ``partition`` -- the swap grid, the s->z and z->s
regeneration predictors, a classifier of the class label (latentds.analysis.labels.class_label) from s and from z,
and, with known factors, linear/MLP read-outs of each factor from s alone and z alone. The mathematics is in
partition.py and factor_probes.py. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from latentds.analysis.context import Context
from latentds.analysis.labels import COLOUR_PREFIXES, class_label, varying_factors
from latentds.analysis.registry import Skip, probe

@probe("partition", order=130, needs=("encoder", "decoder", "partition"),
       explain="Regeneration error of the s->z and z->s predictors, the label classifier trained on s and z, and "
               "(with known factors) linear/MLP probes of each factor from s alone and from z alone.")
def probe_partition(ctx: Context):
    from latentds.analysis.partition import classifier_probe, predictor_probe, swap_grid  # noqa: PLC0415

    codes = ctx.codes
    parts = ctx.model.partition()
    ctx.grid(swap_grid(ctx.model, codes.latents[:8]), "swap_grid.png", 8)
    metrics = {"predictors": predictor_probe(ctx.model, codes.latents)}
    label = class_label(codes)
    if label is not None:
        name, values = label
        metrics["classifier"] = {"label": name, **{part: classifier_probe(codes.latents[:, parts[part]], values)
                                                    for part in ("s", "z")}}
    if codes.factors is not None:  # what Sprites cannot show: how much of each known factor s and z carry
        from latentds.analysis.factor_probes import factor_probes  # noqa: PLC0415

        try:
            factors, names = varying_factors(codes, scalar_only=True)
        except Skip:
            factors, names = None, []
        if factors is not None and not all(n.startswith(COLOUR_PREFIXES) for n in names):
            for part in ("s", "z"):
                metrics[f"factors_{part}"] = factor_probes(codes.latents[:, parts[part]], factors, names)
    return metrics, [("swap_grid.png", "Swap grid: image (i, j) decodes the shared part s of row image i with the "
                      "private part z of column image j.")]
