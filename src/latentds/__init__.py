"""latentds: datasets, models and probes for research on latent spaces of images.

The public API is small, and importing it is cheap (torch, pyrender and webdataset load on first use):

    import latentds
    ds = latentds.load_shards("data/varied", batch_size=64, shuffle=1000)   # stream any shard set
    latentds.render_shards(latentds.RenderSpec("phi", n=1000), "data/phi")  # render one
    latentds.open_dataset("celeba", "/data/celeba-root", split="train")     # a public dataset
"""

import importlib

__version__ = "0.1.0"

from latentds.errors import LatentdsError  # noqa: E402

_EXPORTS = {
    "load_shards": "latentds.datasets.shards",
    "sequence_groups": "latentds.datasets.sequences",
    "open_dataset": "latentds.datasets.public",
    "pack_dataset": "latentds.datasets.pack",
    "RenderSpec": "latentds.render.spec",
    "render_shards": "latentds.render.job",
    "from_pretrained": "latentds.zoo.base:load_pretrained",
}
__all__ = ["LatentdsError", "__version__", *sorted(_EXPORTS)]


_SUBPACKAGES = ("analysis", "cli", "datasets", "errors", "render", "shardsets", "studies", "zoo")


def __getattr__(name):
    if name in _EXPORTS:
        module, _, attr = _EXPORTS[name].partition(":")
        return getattr(importlib.import_module(module), attr or name)
    if name in _SUBPACKAGES:  # `import latentds; latentds.zoo.create(...)` works, loaded on first use
        return importlib.import_module(f"latentds.{name}")
    raise AttributeError(f"module 'latentds' has no attribute {name!r}")
