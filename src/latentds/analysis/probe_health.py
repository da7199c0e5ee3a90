"""The ``health`` probe: did this model train? The gates of analysis/health.py on the Context's image batch.

A study reads ``health.trained`` and ``health.failed`` before any verdict: a model that fails a gate is "not
trained" and every finding that needs it is "not measured". Nothing heavy is imported at module level.
"""

from __future__ import annotations

from latentds.analysis.context import METRIC_IMAGES, Context
from latentds.analysis.registry import probe
from latentds.zoo.capabilities import capabilities_of


@probe("health", order=10,
       explain="Gates a model must pass before anything is concluded from it: sample diversity and sample colour "
               "spread against the data's, "
               "reconstruction error against trivial images (background colour, mean image), foreground colour "
               "against a grey image's, decoder sensitivity to its input, the s/z swap grid, active latent units.")
def probe_health(ctx: Context):
    import torch  # noqa: PLC0415

    from latentds.analysis import health  # noqa: PLC0415

    model, gates, numbers = ctx.model, {}, {}
    declared = capabilities_of(model)
    real = ctx.images()[:health.PAIRS]
    data_pairwise, data_spread = health.mean_pairwise_mse(real), health.spread(real)
    numbers["data"] = {"pairwise_mse": data_pairwise, "spread": data_spread, "images": len(real)}
    if declared.decoder:
        with torch.no_grad():
            samples = model.sample(len(real), generator=torch.Generator().manual_seed(0)).float().cpu()
        pairwise = health.mean_pairwise_mse(samples)
        numbers["samples"] = {"pairwise_mse": pairwise}
        gates["sample_diversity"] = health.gate("sample_diversity", pairwise / data_pairwise,
                                                samples=pairwise, data=data_pairwise)
        sample_colour = health.sample_colour_gate(real, samples)
        if sample_colour is not None:
            gates["sample_colour"] = sample_colour
    if declared.decoder and ctx.codes is not None:
        metric_real = ctx.images()[:METRIC_IMAGES]
        recon = ctx.reconstructions()[:METRIC_IMAGES]
        baselines = ctx.baselines()
        numbers["baselines"] = baselines
        gates["reconstruction"] = health.reconstruction_gate(baselines)
        colour = health.colour_gate(metric_real, recon)
        if colour is not None:
            gates["colour"] = colour
        gates["decoder_sensitivity"] = health.gate("decoder_sensitivity", health.spread(recon) /
                                                   health.spread(metric_real), reconstructions=health.spread(recon),
                                                   data=health.spread(metric_real))
        if declared.partitioned:
            gates["swap_grid"] = health.swap_grid_gate(model, real, data_spread, ctx.device)
    if ctx.codes is not None:
        gates["active_units"] = health.active_units(ctx.codes.latents)
    return {**health.overall(gates), "gates": gates, **numbers}, []
