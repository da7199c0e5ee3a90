"""Non-finite numbers in training and in saved models: found, named in one line, never saved as a trained model.

The trainer stops a run at the first NaN or infinite loss term or gradient (``nonfinite_term``,
``gradient_norm``) and checks the weights before every save (``nonfinite_tensors``), so the last checkpoint and
model in a run directory are always finite; ``LatentModel.from_pretrained`` refuses weights that are not.
"""

from __future__ import annotations

import math

import torch


def nonfinite_term(values: dict[str, dict[str, float]]) -> tuple[str, str, float] | None:
    """The first (group, term, value) of a step's loss values that is NaN or infinite; None if all are finite."""
    for group, terms in values.items():
        for term, value in terms.items():
            if not math.isfinite(value):
                return group, term, value
    return None


def gradient_norm(grads) -> float:
    """The L2 norm of a group's gradients (None entries skipped): NaN or inf if any gradient is not finite."""
    grads = [g for g in grads if g is not None]
    if not grads:
        return 0.0
    return float(torch.nn.utils.get_total_norm(grads))


def nonfinite_tensors(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors holding a NaN or an infinite value."""
    floats = [(k, t) for k, t in tensors.items() if t.is_floating_point() and t.numel()]
    if not floats:
        return []
    ok = torch.stack([torch.isfinite(t).all() for _, t in floats]).tolist()
    return [k for (k, _), good in zip(floats, ok) if not good]
