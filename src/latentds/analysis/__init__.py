"""Latent probes over (model, dataset): scores, metrics, figures and an HTML report."""
