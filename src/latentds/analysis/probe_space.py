"""Probes of the latent space's shape: ``pca`` (principal components and what they decode to), ``interpolation``
(natural vs linear vs spherical paths along rendered sequences) and ``umap`` (the latents laid out in 2-D, with
the interpolation paths drawn on it when there is a sequence set).

Each adapter takes its inputs from the Context (latentds.analysis.context), where they are prepared once; the
mathematics is in pca.py, interpolation.py and embedding.py. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from latentds.analysis.context import Context
from latentds.analysis.labels import most_spread, values_of, varying_factors
from latentds.analysis.registry import Skip, probe


@probe("pca", order=20, needs=("encoder", "decoder"),
       explain="Share of the latent variance along each principal component, and each component's Pearson "
               "correlation with each ground-truth factor.")
def probe_pca(ctx: Context):
    from latentds.analysis.pca import pca_probe  # noqa: PLC0415

    codes = ctx.codes
    result = pca_probe(codes, ctx.model, factor_names=codes.factor_names if codes.factors is not None else None)
    ctx.grid(result["strips"], "pca_strips.png", result["steps"])
    metrics = {k: result[k] for k in ("explained_variance_ratio", "factor_correlation")}
    # how much of each factor one linear direction of the latent (the best principal component) carries
    metrics["best_r2"] = {}
    for row in result["factor_correlation"].values():
        for name, r in row.items():
            if r == r:  # not NaN
                metrics["best_r2"][name] = max(metrics["best_r2"].get(name, 0.0), r * r)
    return metrics, [("pca_strips.png", "Decoded points along the first principal components of the latents "
                      f"(one row each, -3 to +3 standard deviations); variance explained: "
                      f"{', '.join(f'{v:.1%}' for v in result['explained_variance_ratio'])}.")]


@probe("interpolation", order=30, needs=("encoder", "decoder", "sequences"),
       explain="Per sequence group: image-space MSE of each path's decoded images to the rendered ones, and the "
               "correlation of each path's position between the endpoints with the moving factor; over all "
               "groups (\"all\"): each path's mean image MSE with its standard error over the groups, and the share "
               "of groups where the linear path is closer to the natural one than the spherical.")
def probe_interpolation(ctx: Context):
    import numpy as np  # noqa: PLC0415

    metrics, figures, per_path = {}, [], {}
    for i, result in enumerate(ctx.interpolations()):
        g = result["group"]
        metrics[f"group{g}"] = {"factor": result["factor"], "image_mse": result["image_mse"],
                                "factor_correlation": result["factor_correlation"]}
        for path, errors in result["image_mse"].items():
            per_path.setdefault(path, []).append(float(np.mean(errors)))
        if i < FIGURE_GROUPS:
            name = ctx.grid(result["images"], f"interpolation_group{g}.png", len(result["values"]))
            figures.append((name, f"Group {g}: rows are the rendered sequence (only {result['factor']} moves), its "
                            "encoded-then-decoded images (natural path), and linear and spherical interpolation "
                            "between the endpoint latents."))
    correlations = {}
    for m in metrics.values():
        for path, r in m["factor_correlation"].items():
            correlations.setdefault(path, []).append(r)
    groups = len(next(iter(per_path.values()), []))
    summary = {"groups": groups, "image_mse": {}}
    for path, values in per_path.items():
        summary["image_mse"][path] = float(np.mean(values))
        summary["image_mse"][f"{path}_se"] = float(np.std(values, ddof=1) / np.sqrt(groups)) if groups > 1 else None
    if {"linear", "spherical"} <= set(per_path):
        gaps = np.array(per_path["spherical"]) - np.array(per_path["linear"])
        summary["linear_closer_share"] = float(np.mean(gaps > 0))
        summary["spherical_minus_linear"] = float(gaps.mean())
        summary["spherical_minus_linear_se"] = float(gaps.std(ddof=1) / np.sqrt(groups)) if groups > 1 else None
    summary["factor_correlation"] = {}
    for path, values in correlations.items():
        finite = [v for v in values if np.isfinite(v)]
        summary["factor_correlation"][path] = float(np.mean(finite)) if finite else None
        summary["factor_correlation"][f"{path}_se"] = (float(np.std(finite, ddof=1) / np.sqrt(len(finite)))
                                                        if len(finite) > 1 else None)
    metrics["all"] = summary
    return metrics, figures


FIGURE_GROUPS = 3  # groups drawn as figures (the numbers cover every group)


@probe("umap", order=40, needs=("encoder",),
       explain="What coloured the UMAP and the scatter, and which interpolation paths are drawn on it.")
def probe_umap(ctx: Context):
    import numpy as np  # noqa: PLC0415

    from latentds.analysis.embedding import scatter, umap_embedding  # noqa: PLC0415

    codes = ctx.codes
    if ctx.options.colour_by:
        colour, label = values_of(codes, ctx.options.colour_by), ctx.options.colour_by
        if colour.dtype.kind not in "fiub":  # categorical labels (e.g. class names): colour by category index
            categories, colour = np.unique(colour, return_inverse=True)
            label = f"{label} ({len(categories)} categories)"
    else:
        try:
            factors, names = varying_factors(codes)
            j = most_spread(factors)
            colour, label = factors[:, j], names[j]
        except Skip:
            colour, label = None, ""
    extra = list(ctx.interpolation_paths().items())  # embedded with the latents, then split off for drawing
    stacked = np.concatenate([codes.latents] + [z for _, z in extra]) if extra else codes.latents
    placed = umap_embedding(stacked)
    embedding, overlays, start = placed[:len(codes.latents)], {}, len(codes.latents)
    for name, z in extra:
        overlays[name], start = placed[start:start + len(z)], start + len(z)
    scatter(embedding, colour, ctx.figures_dir / "umap.png", title="UMAP of the latents", colour_label=label,
            overlays=overlays)
    # --dims were checked against the latent's width before encoding (AnalysisOptions.check_model)
    spread = list(ctx.options.dims) if ctx.options.dims else np.argsort(codes.latents.var(axis=0))[::-1][:2]
    scatter(codes.latents[:, spread], colour, ctx.figures_dir / "latent_dims.png", colour_label=label,
            title="Two latent dimensions", axes=(f"z{spread[0]}", f"z{spread[1]}"))
    what = f"coloured by {label}" if label else "uncoloured (no factors)"
    return {"coloured_by": label, "overlaid_paths": sorted(overlays), "dims": [int(d) for d in spread]}, [
        ("umap.png", f"UMAP of {len(embedding):,} latents, {what}"
         + ("; lines: the natural, linear and spherical interpolation paths of the first sequence group."
            if overlays else ".")),
        ("latent_dims.png", f"Latent dimensions z{spread[0]} and z{spread[1]} "
         f"({'as chosen' if ctx.options.dims else 'the two of largest variance'}), {what}.")]
