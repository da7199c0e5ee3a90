"""Encode a dataset once: latent means (and posterior samples) with labels and factors, saved and reused.

    codes = encode_dataset(model, "data/varied", n=10_000)
    codes.latents      # (N, D) float32 posterior means (model.encode)
    codes.samples      # (N, D) one posterior sample each, for models with a posterior, else None
    codes.factors      # (N, K) cuboid factor vectors (FACTOR_NAMES) or None; codes.factor_mask alike
    codes.labels       # N label dicts; codes.keys: N sample keys
    codes.save(dir); Codes.load(dir)   # latents.safetensors + labels.jsonl, no pickle
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from latentds.datasets.shards import load_shards, resize_for
from latentds.errors import InvalidParameterError

LATENTS, LABELS = "latents.safetensors", "labels.jsonl"


@dataclass
class Codes:
    latents: np.ndarray
    samples: np.ndarray | None
    factors: np.ndarray | None
    factor_mask: np.ndarray | None
    labels: list[dict]
    keys: list[str]
    source: dict  # what was encoded: model family/config, data, n

    def save(self, directory: str | Path) -> None:
        from safetensors.numpy import save_file  # noqa: PLC0415

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"latents": self.latents}
        for name in ("samples", "factors", "factor_mask"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name).astype(np.uint8) if name == "factor_mask" else getattr(self, name)
        save_file(arrays, str(directory / LATENTS), metadata={"source": json.dumps(self.source)})
        with open(directory / LABELS, "w", encoding="utf-8") as f:
            for key, labels in zip(self.keys, self.labels):
                f.write(json.dumps({"key": key, "labels": labels}) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> Codes:
        from safetensors import safe_open  # noqa: PLC0415

        directory = Path(directory)
        with safe_open(str(directory / LATENTS), "np") as f:
            arrays = {k: f.get_tensor(k) for k in f.keys()}
            source = json.loads(f.metadata()["source"])
        rows = [json.loads(line) for line in open(directory / LABELS, encoding="utf-8")]
        mask = arrays.get("factor_mask")
        return cls(arrays["latents"], arrays.get("samples"), arrays.get("factors"),
                   None if mask is None else mask.astype(bool), [r["labels"] for r in rows], [r["key"] for r in rows],
                   source)


@torch.no_grad()
def encode_dataset(model, data, *, n: int | None = None, batch_size: int = 256, progress: bool = True) -> Codes:
    """Encode the first ``n`` images (all by default) of shard set ``data`` in order with ``model``.

    Uses the capabilities the model declares: a model without ``has_encoder`` is refused; one with
    ``is_posterior`` gives its posterior means (and one sample each), any other its ``encode``."""
    if not getattr(model, "has_encoder", True):
        raise InvalidParameterError(f"{model.family} has no encoder: encoding probes do not apply to it")
    posterior = getattr(model, "is_posterior", False)
    device = next(model.parameters()).device
    stream = load_shards(data, batch_size=batch_size, partial=True, size=resize_for(data, model.config.image_size))
    model.eval()
    latents, samples, factors, masks, labels, keys = [], [], [], [], [], []
    total = n if n is not None else (stream.epoch_samples(0, 1) or None)
    with tqdm(total=total, unit="img", desc="encode", disable=not progress) as bar:
        for batch in stream:
            x = batch["image"].to(device)
            if posterior:
                mu, logvar = model.posterior(x)
                samples.append((mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)).cpu().numpy())
            else:
                mu = model.encode(x)
            latents.append(mu.float().cpu().numpy())
            if "factors" in batch:
                factors.append(batch["factors"].numpy())
                masks.append(batch["factor_mask"].numpy())
            labels += list(batch["labels"])
            keys += batch["__key__"]
            bar.update(x.shape[0])
            if n is not None and len(keys) >= n:
                break
    if not keys:
        raise InvalidParameterError(f"{data} yielded no images to encode")
    cut = n if n is not None else len(keys)
    stack = (lambda parts: np.concatenate(parts)[:cut] if parts else None)  # noqa: E731
    source = {"family": model.family, "config": {k: v for k, v in vars(model.config).items()}, "data": str(data),
              "n": min(cut, len(keys))}
    return Codes(stack(latents), stack(samples), stack(factors), stack(masks), labels[:cut], keys[:cut], source)
