"""What a model config implies in memory, checked before anything is allocated.

A config is built first on PyTorch's "meta" device (shapes only: no memory, no random numbers drawn, a few ms for
any size), so ``latent_dim = 10**9`` or ``width = 10**5`` is refused in one line instead of a 32 TB allocation:

    model_memory(cls, config)               # building it: its parameters and buffers, against free RAM
    training_memory(meta, batch, device)    # training it: + gradients, Adam's two moments, activations

Both compare an estimate with the memory free now (``MemAvailable``; a CUDA device's free memory) and raise
InvalidParameterError naming the sizes to lower. The estimates err high (every module output counted as kept for
the backward pass), and refuse only what cannot fit.
"""

from __future__ import annotations

import dataclasses

import torch

from latentds.errors import InvalidParameterError, first_line
from latentds.zoo.capabilities import capabilities_of

GB = 1e9
# bytes per parameter while training: the weight, its gradient and Adam's two moments (fp32)
TRAINING_BYTES_PER_PARAMETER = 16


def meta_model(cls, config):
    """``cls(config)`` on the meta device: shapes without memory. A size too large for a tensor is refused."""
    try:
        with torch.device("meta"):
            return cls(config)
    except (RuntimeError, OverflowError, MemoryError) as e:
        raise InvalidParameterError(f"model {cls.family} with {sizes_of(config)} cannot be built "
                                    f"({first_line(e, 100)}): lower them") from None


def sizes_of(config) -> str:
    """The config's size fields (image_size, width, *_dim, *_width) as "name=value, ..." for a message."""
    names = [f.name for f in dataclasses.fields(config) if f.name in ("image_size", "width")
             or f.name.endswith(("_dim", "_width"))]
    return ", ".join(f"model.{n}={getattr(config, n)}" for n in names)


def tensor_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers (a meta module's included: shapes and dtypes only)."""
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def free_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes of memory free now on ``device`` (None where unknown)."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return torch.cuda.mem_get_info(device)[0]
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os  # noqa: PLC0415

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def model_memory(cls, config, free: int | None = None):
    """Refuse a config whose parameters and buffers alone exceed the free memory; return its meta model."""
    meta = meta_model(cls, config)
    need, free = tensor_bytes(meta), free_memory() if free is None else free
    if free is not None and need > free:
        params = sum(p.numel() for p in meta.parameters())
        raise InvalidParameterError(f"model {cls.family} with {sizes_of(config)} would hold {params:,} parameters "
                                    f"({need / GB:,.1f} GB), more than the {free / GB:,.1f} GB of memory free here: "
                                    "lower them")
    return meta


def activation_elements(meta: torch.nn.Module, batch_size: int) -> int | None:
    """Elements of every module output in one pass through the encoder and the decoder at ``batch_size`` (what
    the backward pass keeps, over-counted), from the meta model; None if a family's forward does not run there."""
    total = 0

    def count(_module, _inputs, output):
        nonlocal total
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                total += t.numel()

    handles = [m.register_forward_hook(count) for m in meta.modules()]
    c = meta.config
    try:
        with torch.no_grad():
            if capabilities_of(meta).encoder:
                meta.encode(torch.empty(batch_size, c.channels, c.image_size, c.image_size, device="meta"))
            if capabilities_of(meta).decoder:
                meta.decode(torch.empty(batch_size, c.latent_dim, device="meta"))
    except Exception:  # noqa: BLE001  (an estimate only: a family that cannot run on meta is checked by size alone)
        return None
    finally:
        for h in handles:
            h.remove()
    return total


def training_memory(meta: torch.nn.Module, batch_size: int, device: torch.device, free: int | None = None) -> None:
    """Refuse training ``meta``'s config at ``batch_size`` on ``device`` when the weights, gradients, optimiser
    state and activations it needs exceed the device's free memory."""
    weights = sum(p.numel() for p in meta.parameters()) * TRAINING_BYTES_PER_PARAMETER
    activations = (activation_elements(meta, batch_size) or 0) * 4 * 2  # fp32, forward and backward
    free = free_memory(device) if free is None else free
    if free is not None and weights + activations > free:
        raise InvalidParameterError(
            f"training {meta.family} with {sizes_of(meta.config)} at batch size {batch_size:,} needs about "
            f"{(weights + activations) / GB:,.1f} GB (weights, gradients and optimiser state "
            f"{weights / GB:,.1f} GB, activations {activations / GB:,.1f} GB), more than the {free / GB:,.1f} GB free "
            f"on {device}: lower --batch-size or those sizes")
