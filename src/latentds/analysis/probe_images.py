"""Probes of the images a model draws: ``metrics`` (reconstruction error, SSIM, Pearson r), ``fid`` (FID with a
bootstrap interval and KID of reconstructions and samples, and the real-vs-real floor, in a named feature network)
and ``walks`` (linear and spherical walks between prior codes).

``metrics`` and ``fid`` share the Context's one image batch and its reconstructions (prepared once); the floor reads
the data's next batch (``ctx.reference_images()``). FID's features: Inception when its weights are given, else the
``feature_model`` passed to ``run``, else the packaged frozen network (latentds.analysis.feature_network); images
are resized to the network's input size as ``load_shards`` resizes. The mathematics is in image_metrics.py,
feature_distance.py and interpolation.py. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from latentds.analysis.context import METRIC_IMAGES, Context, resized
from latentds.analysis.registry import probe
from latentds.zoo.capabilities import capabilities_of

WALK_PAIRS, WALK_STEPS, WALK_SEED = 4, 6, 0
FLOOR_SEED = 0


@probe("metrics", order=50, needs=("encoder", "decoder"),
       explain="Mean per-image reconstruction error (MSE on [-1, 1] pixels), SSIM and Pearson correlation, each "
               "with its standard error over the images, beside the same for trivial reconstructions (a uniform "
               "background-coloured image, the data's mean image, the input blurred) and, for data with a "
               "background (renders), on the foreground pixels alone: a model that works beats the first two.")
def probe_metrics(ctx: Context):
    import math  # noqa: PLC0415

    import torch  # noqa: PLC0415

    from latentds.analysis.image_metrics import reconstruction_metrics  # noqa: PLC0415

    from latentds.analysis.baselines import sentence, verdict  # noqa: PLC0415

    images, recon = ctx.images()[:METRIC_IMAGES], ctx.reconstructions()[:METRIC_IMAGES]
    result = reconstruction_metrics(images, recon)
    ctx.grid(torch.cat([images[:8], recon[:8]]), "reconstructions.png", 8)
    summary = {}
    for key, value in result.items():
        defined = [v for v in value["per_image"] if math.isfinite(v)]
        summary[key] = value["mean"]
        summary[f"{key}_se"] = float(torch.tensor(defined).std() / math.sqrt(len(defined))) if len(defined) > 1 \
            else None
    summary["ssim_convention"] = result["ssim"]["convention"]
    baselines = ctx.baselines()
    summary["foreground_mse"], summary["foreground_ssim"] = (baselines["model"]["foreground_mse"],
                                                             baselines["model"]["foreground_ssim"])
    summary["baselines"] = {k: v for k, v in baselines.items() if k != "model"}
    summary.update(verdict(summary["mse"], summary["ssim"], summary["baselines"]))
    return summary, [("reconstructions.png", f"Top: data; bottom: reconstructions. Over {len(images)} images: mean "
                      f"per-image MSE {summary['mse']:.4f}, SSIM {summary['ssim']:.3f} (interior mean, as "
                      f"scikit-image), Pearson r {summary['pcc']:.3f}. {sentence(summary)}")]


@probe("fid", order=60, needs=("decoder",),
       explain="Frechet distance (with a bootstrap interval) and KID between the data and reconstructions / samples, "
               "in the features of the named network (the packaged frozen e2e_cnn unless it says otherwise; not "
               "Inception unless it says so); floor: the same between the data and a disjoint real set, the value "
               "of a perfect model.")
def probe_fid(ctx: Context):
    import torch  # noqa: PLC0415

    from latentds.analysis.feature_distance import distances, features  # noqa: PLC0415

    real = ctx.images()
    # a model without an encoder (a GAN) has samples but no reconstructions
    recon = ctx.reconstructions() if capabilities_of(ctx.model).encoder else None
    with torch.no_grad():
        samples = ctx.model.sample(len(real), generator=torch.Generator().manual_seed(0)).float().cpu()
    network, name, prepare, size = _fid_network(ctx)

    def features_of(images):
        return features(images if size is None else resized(images, size), network, prepare=prepare)

    real_features = features_of(real)
    named = {"feature_network": name, "num_features": int(real_features.shape[1])}
    result = {part: {**distances(real_features, features_of(images)), **named}
              for part, images in (("reconstructions", recon), ("samples", samples)) if images is not None}
    result["floor"] = {**_floor(real_features, ctx.reference_images(), features_of), **named}
    return {**result, "feature_network": name}, []


def _fid_network(ctx: Context):
    """(network, name, prepare, input size or None) of the FID features: Inception when its weights were given,
    else ``ctx.feature_model`` (an e2e_cnn named by its weights' hash), else the packaged frozen network."""
    from latentds.analysis.image_metrics import (  # noqa: PLC0415
        INCEPTION_NAME, EncoderFeatures, _inception_metric, _to_uint8)

    if ctx.options.inception_weights:  # torchmetrics' Inception takes uint8 images at any size
        return _inception_metric(ctx.options.inception_weights).inception, INCEPTION_NAME, _to_uint8, None
    if ctx.feature_model is not None:
        from latentds.analysis.feature_network import feature_network_name  # noqa: PLC0415

        named = feature_network_name(ctx.feature_model) if ctx.feature_model.family == "e2e_cnn" else None
        network = EncoderFeatures(ctx.feature_model, name=named)
    else:
        from latentds.analysis.feature_network import load_feature_network  # noqa: PLC0415

        network = load_feature_network()
    return network, network.name, None, network.model.config.image_size


def _floor(real_features, reference, features_of) -> dict:
    """FID and KID between the real set and a disjoint real set of the same size (``reference``), or, when the data
    hold fewer, between two random halves of the real set; ``how`` says which."""
    import torch  # noqa: PLC0415

    from latentds.analysis.feature_distance import distances  # noqa: PLC0415

    n = len(real_features)
    if len(reference) >= n:
        return {**distances(real_features, features_of(reference[:n])),
                "how": f"the data's next {n} images, disjoint from the {n} compared"}
    half = n // 2
    if half < 2:
        return {"n": 0, "how": f"the data hold {n + len(reference)} images: too few for a floor"}
    order = torch.randperm(n, generator=torch.Generator().manual_seed(FLOOR_SEED))
    return {**distances(real_features[order[:half]], real_features[order[half:2 * half]]),
            "how": f"the data hold fewer than {2 * n} images: two random halves ({half} each, seed {FLOOR_SEED}) of "
                   f"the {n} compared; FID grows as n shrinks, so this floor is higher than one of {n} images"}


@probe("walks", order=70, needs=("decoder",),
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
