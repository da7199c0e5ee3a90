"""The settings a training run derives from its recipe: the device, the autocast precision, each parameter
group's optimiser and its learning rate at every step (a pure function of the run's step, so a resumed run
continues the same schedule).
"""

from __future__ import annotations

import math
import os

import torch

from latentds.errors import InvalidParameterError
from latentds.zoo.recipe import OptimConfig


def training_device(name: str, rank: int) -> torch.device:
    """The device of ``train.device`` for this rank (``auto``: its CUDA device when there is one, else the CPU); a
    device that does not exist here is a one-line error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidParameterError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"--device {name}: no CUDA device here; use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise InvalidParameterError(f"--device {name}: this machine has {count} CUDA device"
                                    f"{'s' if count > 1 else ''} (cuda:0 to cuda:{count - 1}); choose one of them")
    if device.type not in ("cpu", "cuda"):
        raise InvalidParameterError(f"--device {name}: latentds trains on cpu or cuda")
    return device


def amp_dtype(precision: str, device: torch.device):
    """The autocast dtype of ``train.precision`` on ``device`` (None: full precision)."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise InvalidParameterError(f"train.precision must be auto, fp32, bf16 or fp16 (got {precision!r})")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def make_optimizer(settings: OptimConfig, params) -> torch.optim.Optimizer:
    """One parameter group's optimiser, from its settings (``Recipe.train.optim(group, family defaults)``)."""
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    return kinds[settings.optimizer](params, lr=settings.lr, betas=tuple(settings.betas),
                                     weight_decay=settings.weight_decay)


def learning_rate(settings: OptimConfig, step: int, horizon: int) -> float:
    """The learning rate of a group at run step ``step`` of ``horizon``."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    if settings.schedule == "constant":
        return settings.lr
    if settings.schedule == "step":
        return settings.lr * (settings.decay_factor if step >= settings.decay_at * horizon else 1.0)
    progress = min(1.0, (step - settings.warmup_steps) / max(1, horizon - settings.warmup_steps))
    return settings.lr * 0.5 * (1 + math.cos(math.pi * progress))


def set_learning_rate(optimizer, settings: OptimConfig, step: int, horizon: int) -> None:
    """Set ``optimizer``'s learning rate for run step ``step`` (right before it steps)."""
    for param_group in optimizer.param_groups:
        param_group["lr"] = learning_rate(settings, step, horizon)
