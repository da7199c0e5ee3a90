"""``run``: the chosen probes over (model, data) -> figures, metrics.json and a self-contained report.html.

Each probe is a function ``probe(context) -> (metrics dict, [(figure file, one-line explanation)])`` registered
with ``@probe(name, needs=..., explain=...)`` (latentds.analysis.registry) into ``PROBES``, in the order of this
file. A probe whose declared needs (encoder, decoder, partition, factors, sequences) the model or data lacks is
skipped before it runs, with the need's reason in the report; one that finds it cannot apply for a reason of its own
raises ``Skip`` (a skipped probe may still leave figures: ``Skip(reason, figures)``). The selection language of
``groups`` and ``colour_by`` is latentds.analysis.select.

The probes follow the capabilities the model declares (``has_encoder``, ``is_posterior``, ``is_partitioned``; see
latentds.zoo.base). A model without an encoder (e.g. DCGAN) is studied through codes from its prior: ``walks``
(linear and spherical walks between random codes, as for every model) and ``arithmetic`` on groups of generated
samples chosen by id from ``generated.png``; the probes that need latents of the data are skipped, saying so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from latentds.analysis.encode import LATENTS, Codes, encode_dataset, encoding_key, matches
from latentds.analysis.registry import NEEDS, PROBES, Skip, probe
from latentds.analysis.report import write_report
from latentds.analysis.select import select, values_of
from latentds.errors import CacheError, InvalidParameterError, OutputDirectoryError
from latentds.shardsets.lock import DirectoryLock


# Disentanglement scores on at most this many latents (1,600 train / 400 test): DCI's cost grows with N x D x K x
# classes. The reference trains on 10,000, and DCI disentanglement and completeness grow with the training points
# (see the DCI note in analysis/scores.py), so compare these with papers' numbers only as lower estimates.
SCORE_SAMPLES = 2000


@dataclass
class Context:
    model: object
    data: str
    out: Path
    n: int
    sequence_data: str | None
    codes: Codes | None = None
    inception_weights: str | None = None
    factorvae: dict = field(default_factory=dict)  # batch_size, n_train, n_eval, n_variance for the score
    colour_by: str | None = None  # a factor or label name for the UMAP and scatter colours
    groups: tuple[str, str] | None = None  # two group selections for latent arithmetic (see select)
    dims: tuple[int, int] | None = None  # the two latent dimensions of the plain scatter (default: widest two)
    feature_model: object = None  # a model whose encoder gives the FID features (default: the analysed model's)
    scores_mode: str = "reference"  # disentanglement_lib's estimators, or "fast" (DCI 10 rounds; not comparable)
    paths: dict = field(default_factory=dict)  # interpolation paths (name -> (K, D) latents) for the UMAP overlay
    figures_dir: Path = field(init=False)

    def __post_init__(self):
        self.figures_dir = self.out / "figures"
        self.figures_dir.mkdir(parents=True, exist_ok=True)

    def need_codes(self) -> Codes:
        if self.codes is None:
            raise Skip(NEEDS["encoder"].reason.format(family=self.model.family))
        return self.codes


def _grid(images: torch.Tensor, path: Path, nrow: int) -> None:
    from torchvision.utils import save_image  # noqa: PLC0415

    save_image(images.float().clamp(-1, 1) * 0.5 + 0.5, path, nrow=nrow, padding=1)


@probe("pca", needs=("encoder", "decoder"),
       explain="Share of the latent variance along each principal component, and each component's Pearson "
               "correlation with each ground-truth factor.")
def probe_pca(ctx: Context):
    from latentds.analysis.pca import pca_probe  # noqa: PLC0415
    from latentds.datasets.cuboids import FACTOR_NAMES  # noqa: PLC0415

    codes = ctx.codes
    result = pca_probe(codes, ctx.model, factor_names=list(FACTOR_NAMES) if codes.factors is not None else None)
    _grid(result["strips"], ctx.figures_dir / "pca_strips.png", result["steps"])
    metrics = {k: result[k] for k in ("explained_variance_ratio", "factor_correlation")}
    return metrics, [("pca_strips.png", "Decoded points along the first principal components of the latents "
                      f"(one row each, -3 to +3 standard deviations); variance explained: "
                      f"{', '.join(f'{v:.1%}' for v in result['explained_variance_ratio'])}.")]


@probe("interpolation", needs=("encoder", "decoder", "sequences"),
       explain="Per sequence group: image-space MSE of each path's decoded images to the rendered ones, and the "
               "correlation of each path's position between the endpoints with the moving factor.")
def probe_interpolation(ctx: Context):
    from latentds.analysis.interpolation import interpolation_probe  # noqa: PLC0415
    from latentds.datasets.sequences import sequence_groups  # noqa: PLC0415

    source = ctx.sequence_data or ctx.data
    try:
        groups = list(sequence_groups(source, groups=[0, 1, 2]))
    except Exception as e:  # not a sequence render, or fewer groups
        raise Skip(f"needs a `latentds render --sequence` shard set (--sequence-data): {e}") from None
    metrics, figures = {}, []
    for g in groups:
        result = interpolation_probe(ctx.model, g)
        name = f"interpolation_group{g['group']}.png"
        _grid(result["images"], ctx.figures_dir / name, len(result["values"]))
        if not ctx.paths:
            ctx.paths = {k: result[k].numpy() for k in ("natural", "linear", "spherical")}
        metrics[f"group{g['group']}"] = {"factor": result["factor"], "image_mse": result["image_mse"],
                                        "factor_correlation": result["factor_correlation"]}
        figures.append((name, f"Group {g['group']}: rows are the rendered sequence (only {result['factor']} "
                        "moves), its encoded-then-decoded images (natural path), and linear and spherical "
                        "interpolation between the endpoint latents."))
    return metrics, figures


@probe("umap", needs=("encoder",),
       explain="What coloured the UMAP and the scatter, and which interpolation paths are drawn on it.")
def probe_umap(ctx: Context):
    codes = ctx.codes
    from latentds.analysis.embedding import scatter, umap_embedding  # noqa: PLC0415

    if ctx.colour_by:
        colour, label = values_of(codes, ctx.colour_by), ctx.colour_by
        if colour.dtype.kind not in "fiub":  # categorical labels (e.g. class names): colour by category index
            categories, colour = np.unique(colour, return_inverse=True)
            label = f"{label} ({len(categories)} categories)"
    else:
        try:
            factors, names = _varying_factors(codes)
            j = int(np.argmax(factors.std(axis=0) / (np.abs(factors).mean(axis=0) + 1e-9)))
            colour, label = factors[:, j], names[j]
        except Skip:
            colour, label = None, ""
    extra = list(ctx.paths.items())  # the paths are embedded with the latents, then split off for drawing
    stacked = np.concatenate([codes.latents] + [z for _, z in extra]) if extra else codes.latents
    placed = umap_embedding(stacked)
    embedding, overlays, start = placed[:len(codes.latents)], {}, len(codes.latents)
    for name, z in extra:
        overlays[name], start = placed[start:start + len(z)], start + len(z)
    scatter(embedding, colour, ctx.figures_dir / "umap.png", title="UMAP of the latents", colour_label=label,
            overlays=overlays)
    spread = list(ctx.dims) if ctx.dims else np.argsort(codes.latents.var(axis=0))[::-1][:2]
    if max(spread) >= codes.latents.shape[1]:
        raise InvalidParameterError(f"--dims {spread}: the latent has {codes.latents.shape[1]} dimensions")
    scatter(codes.latents[:, spread], colour, ctx.figures_dir / "latent_dims.png", colour_label=label,
            title="Two latent dimensions", axes=(f"z{spread[0]}", f"z{spread[1]}"))
    what = f"coloured by {label}" if label else "uncoloured (no factors)"
    return {"coloured_by": label, "overlaid_paths": sorted(overlays), "dims": [int(d) for d in spread]}, [
        ("umap.png", f"UMAP of {len(embedding):,} latents, {what}"
         + ("; lines: the natural, linear and spherical interpolation paths of group 0." if overlays else ".")),
        ("latent_dims.png", f"Latent dimensions z{spread[0]} and z{spread[1]} "
         f"({'as chosen' if ctx.dims else 'the two of largest variance'}), {what}.")]


@probe("metrics", needs=("encoder", "decoder"),
       explain="Mean per-image reconstruction error (MSE on [-1, 1] pixels), SSIM and Pearson correlation.")
def probe_metrics(ctx: Context):
    from latentds.analysis.image_metrics import reconstruction_metrics  # noqa: PLC0415
    from latentds.datasets.shards import load_shards, resize_for  # noqa: PLC0415

    size = ctx.model.config.image_size
    batch = next(iter(load_shards(ctx.data, batch_size=min(256, ctx.n), partial=True, size=resize_for(ctx.data, size))))
    device = next(ctx.model.parameters()).device
    with torch.no_grad():
        recon = ctx.model.reconstruct(batch["image"].to(device)).float().cpu()
    result = reconstruction_metrics(batch["image"], recon)
    _grid(torch.cat([batch["image"][:8], recon[:8]]), ctx.figures_dir / "reconstructions.png", 8)
    summary = {k: v["mean"] for k, v in result.items()}
    summary["ssim_convention"] = result["ssim"]["convention"]
    return summary, [("reconstructions.png", "Top: data; bottom: reconstructions. Mean per-image MSE "
                      f"{summary['mse']:.4f}, SSIM {summary['ssim']:.3f} (interior mean, as scikit-image), "
                      f"Pearson r {summary['pcc']:.3f}.")]


@probe("scores", needs=("encoder", "factors"),
       explain="Disentanglement scores against the factors (MIG, DCI, SAP) with the estimator settings used.")
def probe_scores(ctx: Context):
    from latentds.analysis.scores import scores  # noqa: PLC0415

    codes = ctx.codes
    factors, names = _varying_factors(codes)
    keep = [j for j, name in enumerate(names) if not name.startswith(("color_", "light_color_"))]
    if keep:  # the colour channels triple the factor count for little insight: scores cover the scalar factors
        factors, names = factors[:, keep], [names[j] for j in keep]
    rows = np.random.default_rng(0).permutation(len(factors))[:SCORE_SAMPLES]
    # disentanglement_lib's estimators (DCI: 100 boosting rounds over all latents), one factor per core; the
    # settings record the mode, the points and the library versions.
    result = scores(codes.latents[rows], factors[rows], mode=ctx.scores_mode)
    result["factors"] = names
    return result, []


def _varying_factors(codes: Codes) -> tuple[np.ndarray, list[str]]:
    """The factor columns every sample has and that vary, and their names."""
    from latentds.datasets.cuboids import FACTOR_NAMES  # noqa: PLC0415

    if codes.factors is None:
        raise Skip("needs ground-truth factors (a rendered cuboid shard set)")
    keep = codes.factor_mask.all(axis=0) & (codes.factors.std(axis=0) > 0)
    if not keep.any():
        raise Skip("no factor varies in every sample of this data")
    return codes.factors[:, keep], [name for name, k in zip(FACTOR_NAMES, keep) if k]


@probe("factors", needs=("encoder", "factors"),
       explain="How well a linear model and a small MLP predict each factor from the latents (held-out R^2 or "
               "accuracy, with the constant-guess baseline).")
def probe_factors(ctx: Context):
    from latentds.analysis.factor_probes import factor_probes  # noqa: PLC0415

    codes = ctx.codes
    factors, names = _varying_factors(codes)
    return factor_probes(codes.latents, factors, names), []


GENERATED = 64  # samples in generated.png, ids 0..63 row-major, for arithmetic on a model without an encoder


@probe("arithmetic", needs=("decoder",),
       explain="The attribute vector: which groups (for a model without an encoder, which ids of generated.png), "
               "their sizes and the vector's length.")
def probe_arithmetic(ctx: Context):
    from latentds.analysis.arithmetic import apply_vector, attribute_vector  # noqa: PLC0415

    if not ctx.model.has_encoder:
        return _generated_arithmetic(ctx)
    codes = ctx.need_codes()
    if ctx.groups:
        high, low = select(codes, ctx.groups[0]), select(codes, ctx.groups[1])
        what = f"group {ctx.groups[0]!r} minus group {ctx.groups[1]!r}"
    else:  # by default: the upper minus the lower quartile of the most spread factor
        try:
            factors, names = _varying_factors(codes)
        except Skip:
            raise Skip("needs factors, or two groups, e.g. groups=('Smiling=1', 'Smiling=0')") from None
        j = int(np.argmax(factors.std(axis=0) / (np.abs(factors).mean(axis=0) + 1e-9)))
        lo, hi = np.quantile(factors[:, j], [0.25, 0.75])
        high, low = factors[:, j] >= hi, factors[:, j] <= lo
        what = f"the upper minus the lower quartile of {names[j]}"
    if high.sum() == 0 or low.sum() == 0:
        raise Skip(f"an empty group: {int(high.sum())} and {int(low.sum())} samples")
    vector = attribute_vector(codes.latents, high, low)
    targets = codes.latents[np.flatnonzero(low)[:6]]
    _grid(apply_vector(ctx.model, targets, vector), ctx.figures_dir / "arithmetic.png", 4)
    return {"vector": what, "n_a": int(high.sum()), "n_b": int(low.sum()),
            "vector_norm": float(np.linalg.norm(vector))}, [
        ("arithmetic.png", f"Latent arithmetic: the vector {what} (difference of their mean latents) added at "
         "scales 0, 0.5, 1 and 1.5 to images of the second group, one row each.")]


def _generated_arithmetic(ctx: Context):
    """Arithmetic for a model without an encoder: on groups of its generated samples, chosen by id."""
    from latentds.analysis.arithmetic import apply_vector, attribute_vector  # noqa: PLC0415

    codes = ctx.model.prior(GENERATED, torch.Generator().manual_seed(0))
    ctx.model.eval()
    with torch.no_grad():
        images = torch.cat([ctx.model.decode(chunk).float().cpu() for chunk in codes.split(16)])
    _grid(images, ctx.figures_dir / "generated.png", 8)
    figures = [("generated.png", f"{GENERATED} samples generated from prior codes (seed 0). Their ids run "
                f"row-major from 0 (top left) to {GENERATED - 1} (bottom right): choose two groups of them for "
                "latent arithmetic, e.g. --groups ids:3,7,12 ids:1,5.")]
    labeller = ctx.feature_model if callable(getattr(ctx.feature_model, "predict", None)) else None
    if labeller is not None and not (ctx.groups and all(g.startswith("ids:") for g in ctx.groups)):
        return _labelled_arithmetic(ctx, labeller, figures)
    how = ("a model without an encoder: choose two groups of generated samples by id from generated.png, e.g. "
           "--groups ids:3,7,12 ids:1,5 (or give a labeller, e.g. a trained e2e_cnn as the feature model, to "
           "choose them from a factor)")
    if not ctx.groups or not all(g.startswith("ids:") for g in ctx.groups):
        given = f" (got groups {ctx.groups[0]!r} and {ctx.groups[1]!r})" if ctx.groups else ""
        raise Skip(how + given, figures)
    chosen = []
    for group in ctx.groups:
        try:
            ids = sorted({int(i) for i in group[4:].split(",") if i.strip()})
        except ValueError:
            raise Skip(f"cannot read {group!r}: ids are integers 0..{GENERATED - 1}; {how}", figures) from None
        if not ids or ids[0] < 0 or ids[-1] >= GENERATED:
            raise Skip(f"{group!r}: ids must be 0..{GENERATED - 1} (at least one); {how}", figures)
        chosen.append(ids)
    (a, b), latents = chosen, codes.float().cpu().numpy()
    vector = attribute_vector(latents, np.array(a), np.array(b))
    targets = [i for i in range(GENERATED) if i not in set(a) | set(b)][:6]
    if not targets:
        raise Skip(f"the two groups hold all {GENERATED} generated samples: none is left to apply the vector to",
                   figures)
    _grid(apply_vector(ctx.model, latents[targets], vector), ctx.figures_dir / "arithmetic.png", 4)
    what = f"generated ids {a} minus generated ids {b}"
    return {"vector": what, "ids_a": a, "ids_b": b, "n_a": len(a), "n_b": len(b), "targets": targets,
            "vector_norm": float(np.linalg.norm(vector))}, figures + [
        ("arithmetic.png", f"Latent arithmetic on generated samples: the vector {what} (difference of their mean "
         f"codes) added at scales 0, 0.5, 1 and 1.5 to generated samples {targets} (in neither group), one row each.")]


def _labelled_arithmetic(ctx: Context, labeller, figures: list):
    """Arithmetic on generated samples grouped by a factor that ``labeller`` (e.g. a trained e2e_cnn) predicts:
    ``NAME>N`` / ``NAME<N`` / ``NAME=N`` (rounded) groups, or by default the upper minus the lower quartile of the
    predicted factor that spreads most. Measures the vector's effect: the labeller's mean prediction of the factor
    on the targets' decoded images at each scale."""
    from latentds.analysis.arithmetic import (  # noqa: PLC0415
        LABELLED, SCALES, apply_vector, attribute_vector, factor_shift, label_generated, quartile_groups)

    names = list(labeller.output_names)
    latents, predictions = label_generated(ctx.model, labeller)
    spans = getattr(labeller, "span", None)
    spans = np.ones(len(names)) if spans is None or len(spans) != len(names) else spans.float().cpu().numpy()
    if ctx.groups:
        masks, factors = [], []
        for expression in ctx.groups:
            name, op, value = _prediction_expression(expression, names, figures)
            column = predictions[:, names.index(name)]
            masks.append(np.round(column) == value if op == "=" else column > value if op == ">" else column < value)
            factors.append(name)
        factor, (high, low) = factors[0], masks
        what = f"generated samples predicted {ctx.groups[0]!r} minus those predicted {ctx.groups[1]!r}"
    else:
        factor, high, low = quartile_groups(predictions, names, spans)
        what = f"the upper minus the lower quartile of {factor} as predicted for {LABELLED} generated samples"
    if high.sum() == 0 or low.sum() == 0:
        raise Skip(f"an empty group among {LABELLED} labelled generated samples: {int(high.sum())} and "
                   f"{int(low.sum())}", figures)
    targets = np.flatnonzero(~high & ~low)[:6]
    if len(targets) == 0:
        raise Skip("every labelled generated sample is in a group: none is left to apply the vector to", figures)
    vector = attribute_vector(latents, high, low)
    _grid(apply_vector(ctx.model, latents[targets], vector), ctx.figures_dir / "arithmetic.png", 4)
    shift = factor_shift(ctx.model, labeller, latents[targets], vector, names.index(factor))
    from latentds.zoo.models.e2e_cnn import feature_network_name  # noqa: PLC0415

    labelled_by = feature_network_name(labeller) if labeller.family == "e2e_cnn" else labeller.family
    return {"vector": what, "factor": factor, "labeller": labelled_by, "n_a": int(high.sum()),
            "n_b": int(low.sum()), "targets": targets.tolist(), "vector_norm": float(np.linalg.norm(vector)),
            "scales": list(SCALES), "predicted_by_scale": shift, "predicted_before": shift[SCALES.index(0.0)],
            "predicted_after": shift[SCALES.index(1.0)]}, figures + [
        ("arithmetic.png", f"Latent arithmetic on generated samples chosen by {labelled_by}: the vector {what} "
         f"(difference of their mean codes) added at scales {', '.join(f'{s:g}' for s in SCALES)} to generated "
         f"samples in neither group, one row each. {factor} as {labelled_by} predicts it on those images, mean "
         f"per scale: {', '.join(f'{v:.3g}' for v in shift)}.")]


def _prediction_expression(expression: str, names: list[str], figures: list) -> tuple[str, str, float]:
    for op in ("=", ">", "<"):
        name, found, value = expression.partition(op)
        if found:
            if name.strip() not in names:
                raise Skip(f"group {expression!r}: the labeller predicts {', '.join(names)}", figures)
            try:
                return name.strip(), op, float(value)
            except ValueError:
                break
    raise Skip(f"cannot read group {expression!r} for labelled generated samples: write NAME>N, NAME<N or NAME=N "
               f"with NAME one of {', '.join(names)}, or ids:I,J,...", figures)


@probe("partition", needs=("encoder", "decoder", "partition"),
       explain="Regeneration error of the s->z and z->s predictors, the label classifier trained on s and z, and "
               "(with known factors) linear/MLP probes of each factor from s alone and from z alone.")
def probe_partition(ctx: Context):
    from latentds.analysis.partition import classifier_probe, predictor_probe, swap_grid  # noqa: PLC0415

    codes = ctx.codes
    parts = ctx.model.partition()
    _grid(swap_grid(ctx.model, codes.latents[:8]), ctx.figures_dir / "swap_grid.png", 8)
    metrics = {"predictors": predictor_probe(ctx.model, codes.latents)}
    label = _class_label(codes)
    if label is not None:
        name, values = label
        metrics["classifier"] = {"label": name, **{part: classifier_probe(codes.latents[:, parts[part]], values)
                                                    for part in ("s", "z")}}
    if codes.factors is not None:  # what Sprites cannot show: how much of each known factor s and z carry
        from latentds.analysis.factor_probes import factor_probes  # noqa: PLC0415

        try:
            factors, names = _varying_factors(codes)
        except Skip:
            factors, names = None, []
        scalar = [j for j, n in enumerate(names) if not n.startswith(("color_", "light_color_"))]
        if factors is not None and scalar:
            for part in ("s", "z"):
                metrics[f"factors_{part}"] = factor_probes(codes.latents[:, parts[part]], factors[:, scalar],
                                                           [names[j] for j in scalar])
    return metrics, [("swap_grid.png", "Swap grid: image (i, j) decodes the shared part s of row image i with the "
                      "private part z of column image j.")]


def _class_label(codes: Codes) -> tuple[str, np.ndarray] | None:
    """The label the classifier probe predicts: identity when the data has one (Sprites' 672, --identities K),
    else the first of these labels with 2 to 50 classes."""
    for name in ("identity", "class_name", "label", "n_cuboids", "race", "gender"):
        values = [labels.get(name) for labels in codes.labels]
        classes = len(set(map(str, values)))
        if None not in values and 2 <= classes and (classes <= 50 or name == "identity"):
            return name, np.array([str(v) for v in values])
    return None


@probe("fid", needs=("decoder",),
       explain="Frechet distance between data and reconstructions / samples in the features of the named network "
               "(not Inception unless it says so).")
def probe_fid(ctx: Context):
    from latentds.analysis.image_metrics import EncoderFeatures, fid  # noqa: PLC0415
    from latentds.datasets.shards import load_shards, resize_for  # noqa: PLC0415

    if not ctx.model.has_encoder and ctx.feature_model is None and not ctx.inception_weights:
        ctx.need_codes()  # its own encoder would be the feature network: skip, saying it has none
    size = ctx.model.config.image_size
    real = next(iter(load_shards(ctx.data, batch_size=min(ctx.n, 1000), partial=True,
                                 size=resize_for(ctx.data, size))))["image"]
    device = next(ctx.model.parameters()).device
    with torch.no_grad():
        # a model without an encoder (a GAN) has samples but no reconstructions
        recon = ctx.model.reconstruct(real.to(device)).float().cpu() if ctx.model.has_encoder else None
        samples = ctx.model.sample(len(real), generator=torch.Generator().manual_seed(0)).float().cpu()
    # Inception only with local weights; else a given feature model (e.g. a study's e2e_cnn, named with the hash
    # of its weights) or the model's own encoder; the output always names the network.
    if ctx.inception_weights:
        feature = "inception"
    elif ctx.feature_model is not None:
        from latentds.zoo.models.e2e_cnn import feature_network_name  # noqa: PLC0415

        named = feature_network_name(ctx.feature_model) if ctx.feature_model.family == "e2e_cnn" else None
        feature = EncoderFeatures(ctx.feature_model.to(device).eval(), name=named)
    else:
        feature = EncoderFeatures(ctx.model)
    kwargs = {"inception_weights": ctx.inception_weights} if ctx.inception_weights else {}
    result = {"samples": fid(real, samples, feature, **kwargs)}
    if recon is not None:
        result = {"reconstructions": fid(real, recon, feature, **kwargs)} | result
    return result, []


@probe("factorvae", needs=("encoder", "factors"),
       explain="FactorVAE score: majority-vote classifier on the least-varying latent of one-factor-fixed batches.")
def probe_factorvae(ctx: Context):
    from latentds.analysis.factorvae_cuboids import cuboid_factor_vae  # noqa: PLC0415

    codes = ctx.codes
    preset = (codes.labels[0] if codes.labels else {}).get("preset")
    if preset is None:
        raise Skip("needs a rendered cuboid shard set: the score renders fresh samples with one factor fixed")
    if preset == "phi":
        raise Skip("the phi preset has a single factor: the FactorVAE score needs several")
    return cuboid_factor_vae(ctx.model, preset=preset, **ctx.factorvae), []


@probe("walks", needs=("decoder",),
       explain="Walks between random prior codes: mean squared image change per step, and code norms along each "
               "path -- the linear one dips towards the origin mid-way, where a Gaussian prior has little mass; the"
               " spherical one keeps the endpoints' norms, which is why it is used for Gaussian priors.")
def probe_walks(ctx: Context):
    from latentds.analysis.interpolation import prior_walks  # noqa: PLC0415

    result = prior_walks(ctx.model, pairs=4, steps=6, seed=0)
    _grid(result["images"], ctx.figures_dir / "walks.png", 6)
    metrics = {"pairs": 4, "steps": 6, "seed": 0, **{k: result[k] for k in (
        "image_step_mse", "mean_code_norm", "endpoint_norm", "norm_ratio_min", "code_norm_by_step")}}
    ratio = result["norm_ratio_min"]
    return metrics, [("walks.png", "Walks between 4 pairs of random prior codes (seed 0) in 6 steps: for each pair "
                      "a row along the straight line (linear), then a row along the great circle (spherical). The "
                      f"line's codes shrink to {ratio['linear']:.0%} of the endpoints' norm mid-way, the circle's "
                      f"keep {ratio['spherical']:.0%}.")]


def run(model, data: str | os.PathLike, out: str | os.PathLike, *, probes: list[str] | None = None, n: int = 2000,
        sequence_data: str | None = None, inception_weights: str | None = None, factorvae: dict | None = None,
        colour_by: str | None = None, groups: tuple[str, str] | None = None, dims: tuple[int, int] | None = None,
        feature_model=None, scores_mode: str = "reference", progress: bool = True) -> dict:
    """Run ``probes`` (default: all of PROBES) for ``model`` on shard set ``data``; write figures/, metrics.json,
    latents.safetensors + labels.jsonl (reused by later runs on the same model and data) and report.html into
    ``out``. Returns the metrics dict (with "skipped": {probe: reason}). ``inception_weights``: a local Inception
    weights file makes the FID probe use Inception instead of the model's own encoder (the feature network is
    always named in the output). ``factorvae``: settings of the FactorVAE score (batch_size, n_train, n_eval,
    n_variance; see analysis.factorvae_cuboids), which renders fresh samples. ``colour_by``: a factor or label
    that colours the UMAP; ``groups``: two selections (see ``select``) whose mean latents give the arithmetic
    vector -- for a model without an encoder, two ``ids:I,J,...`` selections of the samples in generated.png;
    ``dims``: the two latent dimensions of the plain scatter. ``feature_model``: a model with an encoder (e.g. a
    trained ``e2e_cnn``) whose features FID uses instead of the analysed model's own (Inception weights win); one
    with ``predict`` also labels the generated samples of a model without an encoder, whose arithmetic groups are
    then chosen from a predicted factor (``groups`` as ``NAME>N``/``NAME<N``, default: its quartiles).
    ``scores_mode``: "reference" (disentanglement_lib's settings, DCI with 100 boosting rounds: minutes for wide
    latents) or "fast" (10 rounds: seconds, inflates DCI on entangled codes; recorded in the settings)."""
    chosen = list(PROBES) if probes is None else list(probes)
    unknown = [p for p in chosen if p not in PROBES]
    if unknown:
        raise InvalidParameterError(f"unknown probe {unknown[0]!r}; choose from: {', '.join(PROBES)}")
    out = check_output_directory(out)
    with DirectoryLock(out, purpose="analyze"):  # one writer per --out: a second analyze is refused
        ctx = Context(model, str(data), out, n, str(sequence_data) if sequence_data else None, None,
                      inception_weights, dict(factorvae or {}), colour_by, tuple(groups) if groups else None,
                      tuple(dims) if dims else None, feature_model, scores_mode)
        ctx.codes = _codes(ctx, progress)
        metrics, figures, skipped = {}, [], {}
        with tqdm(chosen, desc="probes", unit="probe", disable=not progress) as bar:
            for name in bar:
                bar.set_postfix_str(name)
                try:
                    metrics[name], figs = PROBES[name](ctx)
                    figures += figs
                except Skip as why:
                    skipped[name] = str(why)
                    figures += why.figures
        metrics["skipped"] = skipped
        metrics["model"] = {"family": model.family, "latent_dim": model.config.latent_dim,
                            "has_encoder": bool(model.has_encoder)}
        metrics["data"] = {"source": str(data), "n_encoded": 0 if ctx.codes is None else len(ctx.codes.keys)}
        _write_atomic(out / "metrics.json", json.dumps(metrics, indent=1, default=_jsonable) + "\n")
        write_report(out, metrics, figures)
        return metrics


def _codes(ctx: Context, progress: bool) -> Codes | None:
    """The data's latents, reused from an earlier run only for the same weights, data and n (see
    analysis.encode.encoding_key); a damaged or cut-short cache is encoded again. None without an encoder."""
    if not ctx.model.has_encoder:
        return None
    if (ctx.out / LATENTS).is_file():
        try:
            codes = Codes.load(ctx.out)
        except CacheError:
            codes = None
        if codes is not None and matches(codes, encoding_key(ctx.model, ctx.data, ctx.n)):
            return codes
    codes = encode_dataset(ctx.model, ctx.data, n=ctx.n, progress=progress)
    codes.save(ctx.out)
    return codes


def check_output_directory(out: str | os.PathLike) -> Path:
    """``out`` created if needed and writable; OutputDirectoryError naming the problem before any work if not."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputDirectoryError(f"--out {out} is a file; give a directory for the figures and the report")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test.partial"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OutputDirectoryError(f"cannot write to --out {out} ({e.strerror or e}); choose a writable directory"
                                   ) from None
    return out


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
