"""Latent probes over (model, dataset): scores, metrics, figures and an HTML report.

    import latentds.analysis as la
    la.run(model, "data/varied", "analysis/vae", probes=["pca", "umap", "scores"])   # figures, metrics, report
    la.run(model, "data/varied", "analysis/vae", la.AnalysisOptions(n=500))         # the options as one object
    la.scores(latents, factors)   # {"mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap"}

The names are loaded when first used: importing the package imports nothing heavy (the probe registry and the CLI
help stay free of torch); ``run`` and the probes import torch, scikit-learn and the rest when they run, umap-learn
only when the UMAP probe runs. latentds.analysis.probes says which file holds what.
"""

from __future__ import annotations

__all__ = ["PROBES", "AnalysisOptions", "factor_vae_score", "run", "scores"]


def __getattr__(name: str):
    if name == "run":
        from latentds.analysis.runner import run  # noqa: PLC0415

        return run
    if name == "AnalysisOptions":
        from latentds.analysis.options import AnalysisOptions  # noqa: PLC0415

        return AnalysisOptions
    if name == "PROBES":
        from latentds.analysis.registry import registered  # noqa: PLC0415

        return registered()
    if name in ("scores", "factor_vae_score"):
        import importlib  # noqa: PLC0415

        return getattr(importlib.import_module("latentds.analysis.disentanglement"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
