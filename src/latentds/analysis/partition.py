"""Probes for models whose latent splits into a shared part s and a private part z (e.g. the cycle-consistent VAE).

A partitioned model declares ``is_partitioned = True`` and exposes ``partition() -> {"s": slice, "z": slice}`` over
its latent vector. Probes:
- swap grid: image (i, j) decodes s of row image i with z of column image j;
- the classifier probe of the cycle-VAE study (512 -> 256 -> 256 -> classes, batch norm, LeakyReLU 0.2) trained
  on s and on z to predict a label: train and validation accuracy for each (s should hold it, z should not);
- predictors s -> z and z -> s (same MLP, regression) with their regeneration error: the mean squared error of the
  image decoded from (s, predicted z) against the image decoded from (s, z).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from latentds.analysis.context import ready


def is_partitioned(model) -> bool:
    """Whether the model declares an s/z partition (``LatentModel.is_partitioned``; stand-ins declare it too)."""
    return bool(getattr(model, "is_partitioned", False))


@torch.no_grad()
def swap_grid(model, latents: np.ndarray) -> torch.Tensor:
    """(N*N, C, S, S) images: row i takes s from latents[i], column j takes z from latents[j]."""
    parts = model.partition()
    z = torch.as_tensor(latents, dtype=torch.float32)
    n = len(z)
    mixed = z.repeat_interleave(n, dim=0).clone()  # row-major: (i, j) -> i * n + j
    mixed[:, parts["z"]] = z.repeat(n, 1)[:, parts["z"]]
    return model.decode(mixed.to(ready(model))).float().cpu()


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    layers, d = [], d_in
    for width in (512, 256, 256):
        layers += [nn.Linear(d, width), nn.BatchNorm1d(width), nn.LeakyReLU(0.2)]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, d_out))


def _fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, epochs: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            batch = order[start:start + 64]
            if len(batch) < 2:  # batch norm needs two samples
                continue
            optimizer.zero_grad()
            loss_fn(net(x[batch]), y[batch]).backward()
            optimizer.step()
    net.eval()


def classifier_probe(features: np.ndarray, labels: np.ndarray, *, epochs: int = 30, seed: int = 0) -> dict:
    """Train the probe MLP on 80% of (features, integer labels); {"train_accuracy", "val_accuracy", "chance"}."""
    torch.manual_seed(seed)
    classes, y = np.unique(labels, return_inverse=True)
    x = torch.as_tensor(features, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    y = torch.as_tensor(y)
    split = int(0.8 * len(x))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    tr, va = order[:split], order[split:]
    net = _mlp(x.shape[1], len(classes))
    _fit(net, x[tr], y[tr], nn.functional.cross_entropy, epochs, seed)
    with torch.no_grad():
        accuracy = {name: float((net(x[idx]).argmax(1) == y[idx]).float().mean()) for name, idx in
                    (("train_accuracy", tr), ("val_accuracy", va))}
    p = accuracy["val_accuracy"]
    return {**accuracy, "val_accuracy_se": float(np.sqrt(p * (1 - p) / len(va))),  # binomial
            "chance": float(np.bincount(y[va].numpy()).max() / len(va))}


def predictor_probe(model, latents: np.ndarray, *, epochs: int = 30, seed: int = 0) -> dict:
    """Fit s -> z and z -> s; report the regeneration error of each (MSE of decoded images, validation half)."""
    parts = model.partition()
    z_all = torch.as_tensor(latents, dtype=torch.float32)
    split = int(0.8 * len(z_all))
    result = {}
    for source, target in (("s", "z"), ("z", "s")):
        torch.manual_seed(seed)
        x, y = z_all[:, parts[source]], z_all[:, parts[target]]
        net = _mlp(x.shape[1], y.shape[1])
        _fit(net, x[:split], y[:split], nn.functional.mse_loss, epochs, seed)
        with torch.no_grad():
            predicted = z_all[split:].clone()
            predicted[:, parts[target]] = net(x[split:])
            device = ready(model)
            error = (model.decode(predicted.to(device)) - model.decode(z_all[split:].to(device))).pow(2).mean()
            latent_error = (predicted[:, parts[target]] - y[split:]).pow(2).mean()
        result[f"{source}_to_{target}"] = {"regeneration_mse": float(error), "latent_mse": float(latent_error)}
    return result
