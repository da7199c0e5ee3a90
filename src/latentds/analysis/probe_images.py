"""Probes of the images a model draws: ``metrics`` (reconstruction error, SSIM, Pearson r), ``fid`` (Frechet
distance of reconstructions and samples, in a named feature network) and ``walks`` (linear and spherical walks
between prior codes).

``metrics`` and ``fid`` share the Context's one image batch and its reconstructions (prepared once); the
mathematics is in image_metrics.py and interpolation.py. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from latentds.analysis.context import METRIC_IMAGES, Context
from latentds.analysis.registry import probe

WALK_PAIRS, WALK_STEPS, WALK_SEED = 4, 6, 0


@probe("metrics", needs=("encoder", "decoder"),
       explain="Mean per-image reconstruction error (MSE on [-1, 1] pixels), SSIM and Pearson correlation, beside "
               "two trivial baselines on the same images (an all-black image, the images' mean): a model that "
               "works beats both.")
def probe_metrics(ctx: Context):
    import torch  # noqa: PLC0415

    from latentds.analysis.image_metrics import reconstruction_metrics  # noqa: PLC0415

    from latentds.analysis.baselines import sentence, trivial_baselines, verdict  # noqa: PLC0415

    images, recon = ctx.images()[:METRIC_IMAGES], ctx.reconstructions()[:METRIC_IMAGES]
    result = reconstruction_metrics(images, recon)
    ctx.grid(torch.cat([images[:8], recon[:8]]), "reconstructions.png", 8)
    summary = {k: v["mean"] for k, v in result.items()}
    summary["ssim_convention"] = result["ssim"]["convention"]
    summary["baselines"] = trivial_baselines(images)
    summary.update(verdict(summary["mse"], summary["ssim"], summary["baselines"]))
    return summary, [("reconstructions.png", f"Top: data; bottom: reconstructions. Over {len(images)} images: mean "
                      f"per-image MSE {summary['mse']:.4f}, SSIM {summary['ssim']:.3f} (interior mean, as "
                      f"scikit-image), Pearson r {summary['pcc']:.3f}. {sentence(summary)}")]


@probe("fid", needs=("decoder",),
       explain="Frechet distance between data and reconstructions / samples in the features of the named network "
               "(not Inception unless it says so).")
def probe_fid(ctx: Context):
    import torch  # noqa: PLC0415

    from latentds.analysis.image_metrics import EncoderFeatures, fid  # noqa: PLC0415

    if not ctx.model.has_encoder and ctx.feature_model is None and not ctx.inception_weights:
        ctx.need_codes()  # its own encoder would be the feature network: skip, saying it has none
    real = ctx.images()
    # a model without an encoder (a GAN) has samples but no reconstructions
    recon = ctx.reconstructions() if ctx.model.has_encoder else None
    with torch.no_grad():
        samples = ctx.model.sample(len(real), generator=torch.Generator().manual_seed(0)).float().cpu()
    # Inception only with local weights; else a given feature model (e.g. a study's e2e_cnn, named with the hash
    # of its weights) or the model's own encoder; the output always names the network.
    if ctx.inception_weights:
        feature = "inception"
    elif ctx.feature_model is not None:
        from latentds.zoo.models.e2e_cnn import feature_network_name  # noqa: PLC0415

        named = feature_network_name(ctx.feature_model) if ctx.feature_model.family == "e2e_cnn" else None
        feature = EncoderFeatures(ctx.feature_model, name=named)
    else:
        feature = EncoderFeatures(ctx.model)
    kwargs = {"inception_weights": ctx.inception_weights} if ctx.inception_weights else {}
    result = {"samples": fid(real, samples, feature, **kwargs)}
    if recon is not None:
        result = {"reconstructions": fid(real, recon, feature, **kwargs)} | result
    return result, []


@probe("walks", needs=("decoder",),
       explain="Walks between random prior codes: mean squared image change per step, and code norms along each "
               "path -- the linear one dips towards the origin mid-way, where a Gaussian prior has little mass; the"
               " spherical one keeps the endpoints' norms, which is why it is used for Gaussian priors.")
def probe_walks(ctx: Context):
    from latentds.analysis.interpolation import prior_walks  # noqa: PLC0415

    result = prior_walks(ctx.model, pairs=WALK_PAIRS, steps=WALK_STEPS, seed=WALK_SEED)
    ctx.grid(result["images"], "walks.png", WALK_STEPS)
    metrics = {"pairs": WALK_PAIRS, "steps": WALK_STEPS, "seed": WALK_SEED, **{k: result[k] for k in (
        "image_step_mse", "mean_code_norm", "endpoint_norm", "norm_ratio_min", "code_norm_by_step")}}
    ratio = result["norm_ratio_min"]
    return metrics, [("walks.png", f"Walks between {WALK_PAIRS} pairs of random prior codes (seed {WALK_SEED}) in "
                      f"{WALK_STEPS} steps: for each pair a row along the straight line (linear), then a row along "
                      f"the great circle (spherical). The line's codes shrink to {ratio['linear']:.0%} of the "
                      f"endpoints' norm mid-way, the circle's keep {ratio['spherical']:.0%}.")]
