"""latentds: datasets, models and probes for research on latent spaces of images.

The public API is small and imports nothing heavy at import time:

    from latentds.render import RenderSpec, render_shards   # cuboid chains -> WebDataset shards
    from latentds.render.manifest import read_manifest, verify_shards
"""

__version__ = "0.1.0"

from latentds.errors import LatentdsError  # noqa: E402

__all__ = ["LatentdsError", "__version__"]
