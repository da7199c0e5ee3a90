"""Probes against the ground-truth factors: ``scores`` (MIG, DCI, SAP), ``factors`` (linear and MLP read-outs of
each factor) and ``factorvae`` (the FactorVAE score on freshly rendered cuboids).

The factor columns and their names come from the encoded data (``Codes.factor_names``, see
latentds.analysis.labels); the mathematics is in disentanglement.py, factor_probes.py and factorvae_cuboids.py. Nothing heavy
is imported at module level.
"""

from __future__ import annotations

from latentds.analysis.context import Context
from latentds.analysis.labels import score_factors, varying_factors
from latentds.analysis.registry import Skip, probe

# Disentanglement scores on at most this many latents (1,600 train / 400 test): DCI's cost grows with N x D x K x
# classes. The reference trains on 10,000, and DCI disentanglement and completeness grow with the training points
# (see the DCI note in analysis/disentanglement.py), so compare these with papers' numbers only as lower estimates.
SCORE_SAMPLES = 2000


@probe("scores", order=80, needs=("encoder", "factors"),
       explain="Disentanglement scores against the factors (MIG, DCI, SAP) with the estimator settings used, beside "
               "the same estimators on random Gaussian latents of the same shape (the floor), and MIG's bootstrap "
               "standard error.")
def probe_scores(ctx: Context):
    import numpy as np  # noqa: PLC0415

    from latentds.analysis.disentanglement import mig_standard_error, scores  # noqa: PLC0415

    codes = ctx.codes
    factors, names = score_factors(codes)
    rows = np.random.default_rng(0).permutation(len(factors))[:SCORE_SAMPLES]
    # disentanglement_lib's estimators (DCI: 100 boosting rounds over all latents), one factor per core; the
    # settings record the mode, the points and the library versions.
    result = scores(codes.latents[rows], factors[rows], mode=ctx.options.scores_mode)
    result["factors"] = names
    result["mig_se"] = mig_standard_error(codes.latents[rows], factors[rows])
    result["floor"] = random_latent_floor(factors[rows], codes.latents.shape[1], ctx.options.scores_mode)
    return result, []


_FLOORS: dict = {}  # (factors digest, latent width, mode) -> the floor: a study's runs share their factors


def random_latent_floor(factors, width: int, mode: str) -> dict:
    """MIG, DCI and SAP of random N(0, 1) latents (seeded) of ``width`` columns against ``factors``, by the same
    estimators: what a latent space that holds nothing scores at this N."""
    import hashlib  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from latentds.analysis.disentanglement import scores  # noqa: PLC0415

    key = (hashlib.sha256(np.ascontiguousarray(factors).tobytes()).hexdigest(), width, mode)
    if key not in _FLOORS:
        latents = np.random.default_rng(12345).standard_normal((len(factors), width)).astype(np.float32)
        result = scores(latents, factors, mode=mode)
        _FLOORS[key] = {k: result[k] for k in ("mig", "dci_disentanglement", "dci_completeness",
                                               "dci_informativeness", "sap")} | {"how": "random N(0, 1) latents"}
    return dict(_FLOORS[key])


@probe("factors", order=90, needs=("encoder", "factors"),
       explain="How well a linear model and a small MLP predict each factor from the latents (held-out R^2 or "
               "accuracy, with the constant-guess baseline).")
def probe_factors(ctx: Context):
    from latentds.analysis.factor_probes import factor_probes  # noqa: PLC0415

    factors, names = varying_factors(ctx.codes)
    return factor_probes(ctx.codes.latents, factors, names), []


@probe("factorvae", order=100, needs=("encoder", "factors"),
       explain="FactorVAE score: majority-vote classifier on the least-varying latent of one-factor-fixed batches.")
def probe_factorvae(ctx: Context):
    from latentds.analysis.factorvae_cuboids import cuboid_factor_vae  # noqa: PLC0415

    codes = ctx.codes
    preset = (codes.labels[0] if codes.labels else {}).get("preset")
    if preset is None:
        raise Skip("needs a rendered cuboid shard set: the score renders fresh samples with one factor fixed")
    if preset == "phi":
        raise Skip("the phi preset has a single factor: the FactorVAE score needs several")
    _, names = score_factors(codes)  # the factor set of every score
    result = cuboid_factor_vae(ctx.model, preset=preset, **({"factors": names} | ctx.options.factorvae.given()))
    result["floor"] = {"factor_vae_eval_accuracy": 1 / len(names), "how": "chance: one of the factors at random"}
    return result, []


@probe("verification", order=110, needs=("encoder",),
       explain="Verification from latents (the face study's task): same identity or not, scored by the cosine "
               "similarity of two latents; ROC AUC (0.5 is chance) and the accuracy at a threshold fitted on the "
               "other half of the pairs.")
def probe_verification(ctx: Context):
    import numpy as np  # noqa: PLC0415

    from latentds.analysis.verification import verification  # noqa: PLC0415

    codes = ctx.codes
    identities = [labels.get("identity") for labels in codes.labels]
    if any(i is None for i in identities):
        raise Skip("needs an identity label on every sample (CelebA packs, renders with --identities K)")
    result = verification(codes.latents, np.array([str(i) for i in identities]))
    if result["auc"] is None:
        raise Skip(f"no identity has two images among the {len(identities)} encoded samples: raise --n")
    return result, []
