"""Latent probes over (model, dataset): scores, metrics, figures and an HTML report.

    import latentds.analysis as la
    la.run(model, "data/varied", "analysis/vae", probes=["pca", "umap", "scores"])   # figures, metrics, report
    la.scores(latents, factors)   # {"mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap"}

Importing this package imports scikit-learn and torch; umap-learn only when the UMAP probe runs.
"""

from latentds.analysis.probes import PROBES, run
from latentds.analysis.scores import factor_vae_score, scores

__all__ = ["PROBES", "factor_vae_score", "run", "scores"]
