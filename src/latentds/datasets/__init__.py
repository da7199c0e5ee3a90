"""Everything that yields samples: latentds shard sets (streamed) and the public image datasets.

    from latentds.datasets import open_dataset, dataset_names
    ds = open_dataset("utkface", "/data/UTKFace-parent")   # a PublicDataset: ds[i] -> {"key", "image", "labels"}
"""

import importlib

_EXPORTS = {
    "PublicDataset": "public", "open_dataset": "public", "dataset_names": "public",
    "ImageTransform": "transforms", "to_rgb": "transforms",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"latentds.datasets.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'latentds.datasets' has no attribute {name!r}")
