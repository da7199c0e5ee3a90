"""Encode a dataset once: latents (posterior means) with labels and factors, saved and reused.

    codes = encode_dataset(model, "data/varied", n=10_000)
    codes.latents      # (N, D) float32 posterior means (model.posterior for a model declaring
                       # Capabilities(posterior=True), else model.encode)
    codes.factors      # (N, K) factor vectors or None; codes.factor_mask alike
    codes.factor_names # the K names of those columns, from the encoded set's factor table (None without factors)
    codes.labels       # N label dicts; codes.keys: N sample keys
    codes.save(dir); Codes.load(dir)   # latents.safetensors + labels.jsonl, no pickle
    codes.source       # what was encoded: encoding_key(model, data, n) plus "n", the rows encoded

A cache is reused only for the same encoding_key: the model's weights (a digest of its state dict), family and
config, the data (its name and manifest) and the n asked for. Both files are written under temporary names and
renamed, latents last; latents.safetensors names the digest of the labels.jsonl it belongs with, so a save cut
short is found out on load (CacheError), never taken for a complete one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from latentds.analysis.device import ready
from latentds.datasets.shards import load_shards, resize_for, resolve_shards
from latentds.errors import CacheError, InvalidParameterError
from latentds.shardsets.atomic import default_mode, partial_name
from latentds.shardsets.claim import record
from latentds.shardsets.marker import MARKER  # noqa: F401  (analyze's --out and a saved cache carry it)
from latentds.zoo.capabilities import capabilities_of

LEGACY_MARKER = ".latentds-analysis"  # what marked analyze's --out before the claim marker (read, never written)


LATENTS, LABELS = "latents.safetensors", "labels.jsonl"
FORMAT = 3  # of the saved codes (3: factor_names, no posterior samples); a cache of another format is encoded again


@dataclass
class Codes:
    latents: np.ndarray
    factors: np.ndarray | None
    factor_mask: np.ndarray | None
    labels: list[dict]
    keys: list[str]
    source: dict  # what was encoded: model family/config, data, n
    factor_names: list[str] | None = None  # the columns of ``factors``, from the data's factor table

    def __post_init__(self):
        if self.factors is not None and (self.factor_names is None or len(self.factor_names) != self.factors.shape[1]):
            raise ValueError(f"{self.factors.shape[1]} factor columns but factor names {self.factor_names}")

    def save(self, directory: str | Path) -> None:
        """latents.safetensors + labels.jsonl in ``directory``, each written whole and renamed, latents last."""
        from safetensors.numpy import save_file  # noqa: PLC0415

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"latents": self.latents}
        for name in ("factors", "factor_mask"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name).astype(np.uint8) if name == "factor_mask" else getattr(self, name)
        labels = "".join(json.dumps({"key": key, "labels": labels}) + "\n"
                         for key, labels in zip(self.keys, self.labels)).encode("utf-8")
        metadata = {"source": json.dumps(self.source), "labels_sha256": hashlib.sha256(labels).hexdigest(),
                    "rows": str(len(self.keys)), "factor_names": json.dumps(self.factor_names)}
        # Two files, one commit: both are written under their temporary names before either is renamed, and the
        # latents go last (they name the labels they belong with), so a save cut short keeps the old pair.
        # A save that fails (a full disk) removes both temporary files and raises OSError.
        tmp_labels, tmp_latents = partial_name(directory / LABELS), partial_name(directory / LATENTS)
        try:
            tmp_labels.write_bytes(labels)
            try:
                save_file(arrays, str(tmp_latents), metadata=metadata)
            except Exception as e:  # safetensors reports a failed write as its own error, not an OSError
                if "StorageFull" in str(e) or "No space left" in str(e):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_latents)) from None
                raise
            default_mode(tmp_latents)
            os.replace(tmp_labels, directory / LABELS)
            os.replace(tmp_latents, directory / LATENTS)
        except BaseException:
            for tmp in (tmp_labels, tmp_latents):
                with contextlib.suppress(OSError):
                    tmp.unlink()
            raise
        record(directory, "analyze", [LABELS, LATENTS])  # a later analyze may rewrite them

    @classmethod
    def load(cls, directory: str | Path) -> Codes:
        """Codes saved by ``save``; CacheError if the files are missing, damaged or do not belong together."""
        from safetensors import safe_open  # noqa: PLC0415

        directory = Path(directory)
        latents_file, labels_file = directory / LATENTS, directory / LABELS
        try:
            with safe_open(str(latents_file), "np") as f:
                arrays = {k: f.get_tensor(k) for k in f.keys()}
                metadata = f.metadata() or {}
            source = json.loads(metadata["source"])
            labels = labels_file.read_bytes()
            if metadata.get("labels_sha256") != hashlib.sha256(labels).hexdigest():
                raise ValueError(f"{LABELS} is not the one saved with {LATENTS}")
            rows = [json.loads(line) for line in labels.decode("utf-8").splitlines()]
            counts = {len(rows), int(metadata["rows"])} | {len(a) for a in arrays.values()}
            if len(counts) != 1:
                raise ValueError(f"row counts differ: {sorted(counts)}")
            keys, label_dicts = [r["key"] for r in rows], [r["labels"] for r in rows]
            latents = arrays["latents"]
            factor_names = json.loads(metadata.get("factor_names", "null"))
            mask = arrays.get("factor_mask")
            codes = cls(latents, arrays.get("factors"), None if mask is None else mask.astype(bool), label_dicts,
                        keys, source, factor_names)
        except Exception as e:  # missing, truncated, from an older latentds, or cut short while saving
            raise CacheError(f"the encoded latents in {directory} are damaged or incomplete "
                             f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__}); delete {LATENTS} "
                             f"and {LABELS} there to encode again") from None
        return codes


def weights_digest(model) -> str:
    """sha256 of a model's state dict (names, dtypes, shapes and bytes of every tensor): equal for equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def encoding_key(model, data, n: int | None) -> dict:
    """Everything the latents of ``encode_dataset(model, data, n=n)`` depend on, as plain JSON: the model (family,
    config, weights digest), the data (its name and the digest of its manifest, which lists every shard's sha256)
    and n. A cache with another key is encoded again."""
    manifest = resolve_shards(data)[1]
    return json.loads(json.dumps({
        "format": FORMAT, "family": model.family, "config": dict(vars(model.config)),
        "weights": weights_digest(model), "data": str(data), "requested": n,
        "manifest": None if manifest is None else hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()
                                                                  ).hexdigest()}))


def matches(codes: Codes, key: dict) -> bool:
    """True when ``codes`` were encoded with ``key`` (see encoding_key)."""
    return {k: codes.source.get(k) for k in key} == key


@torch.no_grad()
def encode_dataset(model, data, *, n: int | None = None, batch_size: int = 256, progress: bool = True) -> Codes:
    """Encode the first ``n`` images (all by default) of shard set ``data`` in order with ``model``.

    Uses the capabilities the model declares (``capabilities_of``): a model without an encoder is refused; one
    with a posterior gives its posterior means, any other its ``encode``. The factor columns are named by the
    stream's factor table (``ShardStream.factor_table``), so analysis names what this data holds."""
    declared = capabilities_of(model)
    if not declared.encoder:
        raise InvalidParameterError(f"{model.family} has no encoder: encoding probes do not apply to it")
    key = encoding_key(model, data, n)
    posterior = declared.posterior
    device = ready(model)
    stream = load_shards(data, batch_size=batch_size, partial=True, size=resize_for(data, model.config.image_size))
    latents, factors, masks, labels, keys = [], [], [], [], []
    total = n if n is not None else (stream.epoch_samples(0, 1) or None)
    with tqdm(total=total, unit="img", desc="encode", disable=not progress) as bar:
        for batch in stream:
            x = batch["image"].to(device)
            mu = model.posterior(x)[0] if posterior else model.encode(x)
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
    source = {**key, "n": min(cut, len(keys))}
    factors = stack(factors)
    names = None
    if factors is not None:
        names = [row["name"] for row in stream.factor_table]
        if len(names) != factors.shape[1]:  # a set whose manifest does not describe its factor vector
            names = [f"factor_{j}" for j in range(factors.shape[1])]
    return Codes(stack(latents), factors, stack(masks), labels[:cut], keys[:cut], source, names)
