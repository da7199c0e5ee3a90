"""The one way a probe readies a model it runs: evaluation mode, and the device its parameters live on.

Every probe's mathematics, the encoder (encode.py) and ``Context`` call ``ready``; it lives apart from the Context
so those modules import it without importing each other (see ARCHITECTURE.md, "Probes").
"""

from __future__ import annotations


def model_device(model):
    """The device of ``model``'s parameters (CPU for a model without any)."""
    import torch  # noqa: PLC0415

    return next(iter(model.parameters()), torch.empty(0)).device


def ready(model):
    """Put ``model`` in evaluation mode and return its device: what every probe does before it runs a model."""
    model.eval()
    return model_device(model)
