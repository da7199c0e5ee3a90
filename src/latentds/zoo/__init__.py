"""The model zoo: one base class (LatentModel), families registered by name, one trainer, TOML recipes.

    from latentds.zoo import create
    model = create("vae", latent_dim=64)
"""

import importlib

_EXPORTS = {
    "LatentModel": "base", "create": "base", "families": "base", "load_pretrained": "base",
    "train": "trainer", "load_recipe": "recipe", "Capabilities": "capabilities", "CardInfo": "card",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"latentds.zoo.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'latentds.zoo' has no attribute {name!r}")
