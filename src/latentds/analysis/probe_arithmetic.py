"""Latent arithmetic: ``arithmetic``, the attribute vector between two groups (the difference of their mean
latents) added to images of the second group.

A model with an encoder: groups of the data chosen with the selection language (latentds.analysis.select), by
default the upper and lower quartiles of the most spread factor. A model without an encoder (e.g. DCGAN): groups
of its generated samples, chosen by id from generated.png, or from a factor that a labeller (e.g. a trained
e2e_cnn given as the feature model) predicts for them. The mathematics is in arithmetic.py. Nothing heavy is
imported at module level.
"""

from __future__ import annotations

from latentds.analysis.context import Context
from latentds.analysis.labels import most_spread, varying_factors
from latentds.analysis.registry import Skip, probe
from latentds.analysis.select import select
from latentds.zoo.capabilities import capabilities_of

GENERATED = 64  # samples in generated.png, ids 0..63 row-major, for arithmetic on a model without an encoder


@probe("arithmetic", order=120, needs=("decoder",),
       explain="The attribute vector: which groups (for a model without an encoder, which ids of generated.png), "
               "their sizes and the vector's length.")
def probe_arithmetic(ctx: Context):
    import numpy as np  # noqa: PLC0415

    from latentds.analysis.arithmetic import apply_vector, attribute_vector  # noqa: PLC0415

    if not capabilities_of(ctx.model).encoder:
        return _generated_arithmetic(ctx)
    codes, groups = ctx.need_codes(), ctx.options.groups
    if groups:
        high, low = select(codes, groups[0]), select(codes, groups[1])
        what = f"group {groups[0]!r} minus group {groups[1]!r}"
    else:  # by default: the upper minus the lower quartile of the most spread factor
        try:
            factors, names = varying_factors(codes)
        except Skip:
            raise Skip("needs factors, or two groups, e.g. groups=('Smiling=1', 'Smiling=0')") from None
        j = most_spread(factors)
        lo, hi = np.quantile(factors[:, j], [0.25, 0.75])
        high, low = factors[:, j] >= hi, factors[:, j] <= lo
        what = f"the upper minus the lower quartile of {names[j]}"
    if high.sum() == 0 or low.sum() == 0:
        raise Skip(f"an empty group: {int(high.sum())} and {int(low.sum())} samples")
    vector = attribute_vector(codes.latents, high, low)
    targets = codes.latents[np.flatnonzero(low)[:6]]
    ctx.grid(apply_vector(ctx.model, targets, vector), "arithmetic.png", 4)
    return {"vector": what, "n_a": int(high.sum()), "n_b": int(low.sum()),
            "vector_norm": float(np.linalg.norm(vector))}, [
        ("arithmetic.png", f"Latent arithmetic: the vector {what} (difference of their mean latents) added at "
         "scales 0, 0.5, 1 and 1.5 to images of the second group, one row each.")]


def _generated_arithmetic(ctx: Context):
    """Arithmetic for a model without an encoder: on groups of its generated samples, chosen by id."""
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from latentds.analysis.arithmetic import apply_vector, attribute_vector  # noqa: PLC0415

    codes = ctx.model.prior(GENERATED, torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = torch.cat([ctx.model.decode(chunk).float().cpu() for chunk in codes.split(16)])
    ctx.grid(images, "generated.png", 8)
    figures = [("generated.png", f"{GENERATED} samples generated from prior codes (seed 0). Their ids run "
                f"row-major from 0 (top left) to {GENERATED - 1} (bottom right): choose two groups of them for "
                "latent arithmetic, e.g. --groups ids:3,7,12 ids:1,5.")]
    labeller = next((m for m in (ctx.labeller, ctx.feature_model) if callable(getattr(m, "predict", None))), None)
    groups = ctx.options.groups
    if labeller is not None and not (groups and all(g.startswith("ids:") for g in groups)):
        return _labelled_arithmetic(ctx, labeller, figures)
    how = ("a model without an encoder: choose two groups of generated samples by id from generated.png, e.g. "
           "--groups ids:3,7,12 ids:1,5 (or give a labeller, e.g. a trained e2e_cnn as the feature model, to "
           "choose them from a factor)")
    if not groups or not all(g.startswith("ids:") for g in groups):
        given = f" (got groups {groups[0]!r} and {groups[1]!r})" if groups else ""
        raise Skip(how + given, figures)
    chosen = []
    for group in groups:
        try:
            ids = sorted({int(i) for i in group[4:].split(",") if i.strip()})
        except ValueError:
            raise Skip(f"cannot read {group!r}: ids are integers 0..{GENERATED - 1}; {how}", figures) from None
        if not ids or ids[0] < 0 or ids[-1] >= GENERATED:
            raise Skip(f"{group!r}: ids must be 0..{GENERATED - 1} (at least one); {how}", figures)
        chosen.append(ids)
    (a, b), latents = chosen[:2], codes.float().cpu().numpy()
    vector = attribute_vector(latents, np.array(a), np.array(b))
    onto = chosen[2] if len(chosen) > 2 else range(GENERATED)  # a third group: the samples the vector is added to
    targets = [i for i in onto if i not in set(a) | set(b)][:6]
    if not targets:
        raise Skip(f"the two groups hold all {GENERATED} generated samples: none is left to apply the vector to",
                   figures)
    ctx.grid(apply_vector(ctx.model, latents[targets], vector), "arithmetic.png", 4)
    what = f"generated ids {a} minus generated ids {b}"
    return {"vector": what, "ids_a": a, "ids_b": b, "n_a": len(a), "n_b": len(b), "targets": targets,
            "vector_norm": float(np.linalg.norm(vector))}, figures + [
        ("arithmetic.png", f"Latent arithmetic on generated samples: the vector {what} (difference of their mean "
         f"codes) added at scales 0, 0.5, 1 and 1.5 to generated samples {targets} (in neither group), one row each.")]


def _labelled_arithmetic(ctx: Context, labeller, figures: list):
    """Arithmetic on generated samples grouped by a factor that ``labeller`` (e.g. a trained e2e_cnn) predicts:
    ``NAME>N`` / ``NAME<N`` / ``NAME=N`` (rounded) groups, or by default the upper minus the lower quartile of the
    predicted factor that spreads most. The vector is added to the samples in neither group, or, with a third
    group, to that group's samples (the document's glasses vector added to smiling faces: ``Eyeglasses=1``,
    ``Eyeglasses=0``, ``Smiling=1``). Measures the vector's effect: the labeller's mean prediction of the factor
    on the targets' decoded images at each scale, and the change at scale 1 beside that of random directions of
    the same norm (``effect`` / ``control_effect``, arithmetic.effect_with_control)."""
    import numpy as np  # noqa: PLC0415

    from latentds.analysis.arithmetic import (  # noqa: PLC0415
        LABELLED, MEASURED, SCALES, apply_vector, attribute_vector, effect_with_control, factor_shift,
        label_generated, quartile_groups)

    names = list(labeller.output_names)
    latents, predictions = label_generated(ctx.model, labeller)
    spans = getattr(labeller, "span", None)
    spans = np.ones(len(names)) if spans is None or len(spans) != len(names) else spans.float().cpu().numpy()
    groups = ctx.options.groups
    if groups:
        masks, factors = [], []
        for expression in groups:
            name, op, value = _prediction_expression(expression, names, figures)
            column = predictions[:, names.index(name)]
            masks.append(np.round(column) == value if op == "=" else column > value if op == ">" else column < value)
            factors.append(name)
        factor, (high, low), onto = factors[0], masks[:2], masks[2] if len(masks) > 2 else None
        what = f"generated samples predicted {groups[0]!r} minus those predicted {groups[1]!r}"
    else:
        factor, high, low = quartile_groups(predictions, names, spans)
        onto = None
        what = f"the upper minus the lower quartile of {factor} as predicted for {LABELLED} generated samples"
    if high.sum() == 0 or low.sum() == 0:
        raise Skip(f"an empty group among {LABELLED} labelled generated samples: {int(high.sum())} and "
                   f"{int(low.sum())}", figures)
    pool = np.flatnonzero(~high & ~low if onto is None else onto & ~high)
    if len(pool) == 0:
        raise Skip("no labelled generated sample is left to apply the vector to (" + (
            "every one is in a group)" if onto is None else f"none predicted {groups[2]!r} outside the first)"),
            figures)
    targets = pool[:6]
    vector = attribute_vector(latents, high, low)
    ctx.grid(apply_vector(ctx.model, latents[targets], vector), "arithmetic.png", 4)
    column = names.index(factor)
    shift = factor_shift(ctx.model, labeller, latents[targets], vector, column)
    measured = effect_with_control(ctx.model, labeller, latents[pool[:MEASURED]], vector, column)
    onto_what = "in neither group" if onto is None else f"predicted {groups[2]!r} (not in the first group)"
    from latentds.analysis.feature_network import feature_network_name  # noqa: PLC0415

    labelled_by = feature_network_name(labeller) if labeller.family == "e2e_cnn" else labeller.family
    return {"vector": what, "factor": factor, "labeller": labelled_by, "n_a": int(high.sum()),
            "n_b": int(low.sum()), "targets": targets.tolist(), "vector_norm": float(np.linalg.norm(vector)),
            "scales": list(SCALES), "predicted_by_scale": shift, "predicted_before": shift[SCALES.index(0.0)],
            "predicted_after": shift[SCALES.index(1.0)], "applied_to": onto_what, **measured}, figures + [
        ("arithmetic.png", f"Latent arithmetic on generated samples chosen by {labelled_by}: the vector {what} "
         f"(difference of their mean codes) added at scales {', '.join(f'{s:g}' for s in SCALES)} to generated "
         f"samples {onto_what}, one row each. {factor} as {labelled_by} predicts it on those images, mean "
         f"per scale: {', '.join(f'{v:.3g}' for v in shift)}. Over {measured['measured_on']} such samples the "
         f"vector moves it by {measured['effect']:.3g} +- {measured['effect_se']:.2g}; a random direction of "
         f"the same norm by {measured['control_effect']:.3g} +- {measured['control_effect_se']:.2g} "
         f"({measured['control_draws']} draws; {measured['control_abs_effect']:.3g} in size).")]


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
