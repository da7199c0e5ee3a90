"""The small renders the analysis tests probe (imported by those tests, like public_fixtures)."""

from latentds.render import RenderSpec, render_shards


def render_analysis_sets(base, *, seed: int, n: int, seq_n: int, seq_name: str = "seq"):
    """A 16 px varied render (``base/varied``, shards of 16) and a ``theta_1`` sequence render of ``seq_n``
    images in groups of 8 (``base/<seq_name>``): the data the analysis tests probe."""
    render_shards(RenderSpec("varied", n=n, size=16, shard_size=16, seed=seed), base / "varied", workers=1,
                  progress=False)
    render_shards(RenderSpec("varied", n=seq_n, size=16, sequence="theta_1", steps=8), base / seq_name, workers=1,
                  progress=False)
    return base
