"""Is the reconstruction any good? The model's MSE and SSIM beside two trivial baselines on the same images: an
all-background (black) image, and the mean of those images. A model that does not beat both has learned no more
than the background or the average scene."""

from __future__ import annotations

import torch

from latentds.analysis.image_metrics import per_image_mse, per_image_ssim

BLACK = -1.0  # black in the [-1, 1] pixel range the probes use


def trivial_baselines(images: torch.Tensor) -> dict[str, dict[str, float]]:
    """{"black" | "mean_image": {"mse", "ssim"}}: each baseline as a reconstruction of every image."""
    images = images.detach().float()
    guesses = {"black": torch.full_like(images, BLACK), "mean_image": images.mean(0, keepdim=True).expand_as(images)}
    return {name: {"mse": float(per_image_mse(images, guess.contiguous()).mean()),
                   "ssim": float(per_image_ssim(images, guess.contiguous()).mean())}
            for name, guess in guesses.items()}


def verdict(mse: float, ssim: float, baselines: dict[str, dict[str, float]]) -> dict:
    """Whether the model beats every baseline (lower MSE and higher SSIM than each), and the factor by which its
    MSE is below the best baseline's."""
    best_mse = min(b["mse"] for b in baselines.values())
    best_ssim = max(b["ssim"] for b in baselines.values())
    return {"beats_baselines": bool(mse < best_mse and ssim > best_ssim),
            "mse_below_best_baseline": best_mse / mse if mse > 0 else float("inf")}


def sentence(metrics: dict) -> str:
    """One line for the report, from the metrics probe's numbers."""
    b = metrics["baselines"]
    black, mean = b["black"], b["mean_image"]
    head = ("The model beats both trivial baselines" if metrics["beats_baselines"]
            else "The model does NOT beat the trivial baselines: it has not learned to reconstruct these images yet")
    return (f"{head}: reconstruction MSE {metrics['mse']:.4f} vs {black['mse']:.4f} for an all-black image and "
            f"{mean['mse']:.4f} for the data's mean image ({metrics['mse_below_best_baseline']:.1f}x below the "
            f"better one); SSIM {metrics['ssim']:.3f} vs {black['ssim']:.3f} and {mean['ssim']:.3f}.")
