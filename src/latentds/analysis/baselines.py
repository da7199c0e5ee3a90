"""Is the reconstruction any good? The model's MSE and SSIM beside two trivial reconstructions of the same images
(analysis/health.py computes them): a uniform background-coloured image (black on renders) and the images' mean.
A model that does not beat both has learned no more than the background or the average scene."""

from __future__ import annotations

TRIVIAL = ("background", "mean_image")  # the baselines a model must beat (health.trivial_reconstructions)


def verdict(mse: float, ssim: float, baselines: dict) -> dict:
    """Whether the model beats both trivial baselines (lower MSE and higher SSIM than each), and the factor by which
    its MSE is below the better baseline's."""
    best_mse = min(baselines[name]["mse"] for name in TRIVIAL)
    best_ssim = max(baselines[name]["ssim"] for name in TRIVIAL)
    return {"beats_baselines": bool(mse < best_mse and ssim > best_ssim),
            "mse_below_best_baseline": best_mse / mse if mse > 0 else float("inf")}


def sentence(metrics: dict) -> str:
    """One line for the report, from the metrics probe's numbers."""
    b = metrics["baselines"]
    background, mean = b["background"], b["mean_image"]
    head = ("The model beats both trivial baselines" if metrics["beats_baselines"]
            else "The model does NOT beat the trivial baselines: it has not learned to reconstruct these images yet")
    return (f"{head}: reconstruction MSE {metrics['mse']:.4f} vs {background['mse']:.4f} for a background-coloured "
            f"image and {mean['mse']:.4f} for the data's mean image ({metrics['mse_below_best_baseline']:.1f}x below "
            f"the better one); SSIM {metrics['ssim']:.3f} vs {background['ssim']:.3f} and {mean['ssim']:.3f}.")
