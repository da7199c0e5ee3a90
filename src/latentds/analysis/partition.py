"""Probes for models whose latent splits into a shared part s and a private part z (e.g. the cycle-consistent VAE).

A partitioned model declares ``Capabilities(partitioned=True)`` and exposes ``partition() -> {"s": slice, "z":
slice}`` over its latent vector. Probes, as the source document of the cycle-VAE study (a re-implementation of Jha et al. 2018
on 2D Sprites) defines and trains them:
- swap grid: image (i, j) decodes s of row image i with z of column image j;
- the classifier (``classifier_net``: part width -> 256 -> 256 -> classes, batch norm and LeakyReLU 0.2 after the
  two hidden layers) trained on s and on z to predict a label: train and validation accuracy for each (s should
  hold it, z should not); Adam 1e-3 (0.9, 0.999), batches of 256, cross-entropy, 100 epochs, LR x0.1 after 80;
- predictors s -> z and z -> s (``predictor_net``: width -> 256 -> 256 -> width, batch norm, no activation),
  Adam 1e-3, batches of 128, the root of the mean squared latent error, 100 epochs, LR x0.1 after 80; their
  regeneration error is the MSE of the image decoded from the predicted latent against the image decoded from the
  true one, raw and normalised by the image change of a random swap of the predicted part (z for s -> z, s for
  z -> s) with another validation image's: 1.0 is no better than a random swap, 0 is perfect.
Every probe fits on the first 80% of the latents in a seeded order and reports on the other 20%.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from latentds.analysis.device import ready

HIDDEN = 256
LR, BETAS = 1e-3, (0.9, 0.999)
EPOCHS, DECAY_AFTER = 100, 0.8  # the reference: 100 epochs, StepLR(step_size=80, gamma=0.1)
CLASSIFIER_BATCH, PREDICTOR_BATCH = 256, 128
BOOTSTRAP = 200


@torch.no_grad()
def swap_grid(model, latents: np.ndarray) -> torch.Tensor:
    """(N*N, C, S, S) images: row i takes s from latents[i], column j takes z from latents[j]."""
    parts = model.partition()
    z = torch.as_tensor(latents, dtype=torch.float32)
    n = len(z)
    mixed = z.repeat_interleave(n, dim=0).clone()  # row-major: (i, j) -> i * n + j
    mixed[:, parts["z"]] = z.repeat(n, 1)[:, parts["z"]]
    return model.decode(mixed.to(ready(model))).float().cpu()


def classifier_net(d_in: int, classes: int) -> nn.Sequential:
    """The document's classifier: fc1 d_in -> 256, batch_norm1, leaky_relu1 (0.2), fc2 256 -> 256, batch_norm2,
    leaky_relu2, fc3 256 -> classes."""
    return nn.Sequential(OrderedDict([
        ("fc1", nn.Linear(d_in, HIDDEN)), ("batch_norm1", nn.BatchNorm1d(HIDDEN)), ("leaky_relu1", nn.LeakyReLU(0.2)),
        ("fc2", nn.Linear(HIDDEN, HIDDEN)), ("batch_norm2", nn.BatchNorm1d(HIDDEN)), ("leaky_relu2", nn.LeakyReLU(0.2)),
        ("fc3", nn.Linear(HIDDEN, classes))]))


def predictor_net(d_in: int, d_out: int) -> nn.Sequential:
    """The document's predictor: fc1 d_in -> 256, batch_norm1, fc2 256 -> 256, batch_norm2, fc3 256 -> d_out; no
    activation (as printed there)."""
    return nn.Sequential(OrderedDict([
        ("fc1", nn.Linear(d_in, HIDDEN)), ("batch_norm1", nn.BatchNorm1d(HIDDEN)),
        ("fc2", nn.Linear(HIDDEN, HIDDEN)), ("batch_norm2", nn.BatchNorm1d(HIDDEN)),
        ("fc3", nn.Linear(HIDDEN, d_out))]))


def _fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, epochs: int, batch: int, seed: int) -> None:
    """Adam (LR, BETAS), shuffled batches, LR x0.1 after DECAY_AFTER of the epochs (StepLR as the reference)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR, betas=BETAS)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, round(DECAY_AFTER * epochs)), gamma=0.1)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            index = order[start:start + batch]
            if len(index) < 2:  # batch norm needs two samples
                continue
            optimizer.zero_grad()
            loss_fn(net(x[index]), y[index]).backward()
            optimizer.step()
        scheduler.step()
    net.eval()


def _split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * n)
    return order[:cut], order[cut:]


def classifier_probe(features: np.ndarray, labels: np.ndarray, *, epochs: int = EPOCHS, seed: int = 0) -> dict:
    """Train the document's classifier on 80% of (features, integer labels); {"train_accuracy", "val_accuracy",
    "val_accuracy_se" (binomial), "chance", "classes"}."""
    torch.manual_seed(seed)
    classes, y = np.unique(labels, return_inverse=True)
    x, y = torch.as_tensor(features, dtype=torch.float32), torch.as_tensor(y.reshape(-1))
    tr, va = _split(len(x), seed)
    net = classifier_net(x.shape[1], len(classes))
    _fit(net, x[tr], y[tr], nn.functional.cross_entropy, epochs, CLASSIFIER_BATCH, seed)
    with torch.no_grad():
        accuracy = {name: float((net(x[idx]).argmax(1) == y[idx]).float().mean()) for name, idx in
                    (("train_accuracy", tr), ("val_accuracy", va))}
    p = accuracy["val_accuracy"]
    return {**accuracy, "val_accuracy_se": float(np.sqrt(p * (1 - p) / len(va))),  # binomial
            "chance": float(np.bincount(y[va].numpy()).max() / len(va)), "classes": int(len(classes))}


def _rmse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(prediction, target).sqrt()  # the reference's loss: sqrt(MSELoss)


def derangement(n: int, seed: int) -> torch.Tensor:
    """A seeded permutation of range(n) that moves every index (n >= 2): each image's "another image"."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    other = torch.empty(n, dtype=torch.long)
    other[order] = order.roll(1)
    return other


def regeneration_error(model, latents: torch.Tensor, predicted: torch.Tensor, part: str, seed: int = 0) -> dict:
    """The image error of ``predicted`` (latents with ``part`` replaced by a prediction) against ``latents``, raw
    and over the image change of replacing ``part`` with another image's (a random derangement): the per-image
    means, {"regeneration_mse", "regeneration_mse_se", "swap_mse", "regeneration_normalised",
    "regeneration_normalised_se" (bootstrap over the images)}."""
    index = model.partition()[part]
    swapped = latents.clone()
    swapped[:, index] = latents[derangement(len(latents), seed), index]
    device = ready(model)
    with torch.no_grad():
        truth, guess, swap = (model.decode(v.to(device)).double().cpu() for v in (latents, predicted, swapped))
    error, change = (guess - truth).pow(2).flatten(1).mean(1), (swap - truth).pow(2).flatten(1).mean(1)
    resample = torch.randint(len(error), (BOOTSTRAP, len(error)), generator=torch.Generator().manual_seed(seed))
    ratios = error[resample].mean(1) / change[resample].mean(1).clamp_min(1e-12)
    return {"regeneration_mse": float(error.mean()), "regeneration_mse_se": float(error.std() / len(error) ** 0.5),
            "swap_mse": float(change.mean()),
            "regeneration_normalised": float(error.mean() / change.mean().clamp_min(1e-12)),
            "regeneration_normalised_se": float(ratios.std())}


def predictor_probe(model, latents: np.ndarray, *, epochs: int = EPOCHS, seed: int = 0) -> dict:
    """Fit the document's predictors s -> z and z -> s on 80% of the latents; on the other 20%: the latent MSE and
    the regeneration error, raw and normalised (``regeneration_error``)."""
    parts = model.partition()
    z_all = torch.as_tensor(latents, dtype=torch.float32)
    tr, va = _split(len(z_all), seed)
    result = {}
    for source, target in (("s", "z"), ("z", "s")):
        torch.manual_seed(seed)
        x, y = z_all[:, parts[source]], z_all[:, parts[target]]
        net = predictor_net(x.shape[1], y.shape[1])
        _fit(net, x[tr], y[tr], _rmse, epochs, PREDICTOR_BATCH, seed)
        with torch.no_grad():
            predicted = z_all[va].clone()
            predicted[:, parts[target]] = net(x[va])
        result[f"{source}_to_{target}"] = {
            **regeneration_error(model, z_all[va], predicted, target, seed),
            "latent_mse": float((predicted[:, parts[target]] - y[va]).pow(2).mean())}
    return result
