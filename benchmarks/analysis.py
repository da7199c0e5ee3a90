"""Analysis speed: encode throughput and the wall time of each probe on 10,000 latents of dimension 128.

    python benchmarks/analysis.py [--data DIR] [--n 10000]

Uses the VAE recipe's model (64 px, latent 128; untrained: speed does not depend on the weights) on a `--varied`
shard set (rendered first without --data). UMAP of 10,000 x 128 must finish within a minute on 2 cores; its
time is printed with and without numba's first-call compilation.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()

    from latentds.analysis import probes as analysis
    from latentds.analysis.encode import encode_dataset
    from latentds.render import RenderSpec, render_shards
    from latentds.zoo.base import create

    scratch = Path(tempfile.mkdtemp(prefix="latentds-analysis-"))
    try:
        data = args.data
        if data is None:
            data = scratch / "shards"
            render_shards(RenderSpec("varied", n=args.n, size=64, shard_size=1000), data, progress=False)
        torch.manual_seed(0)
        model = create("vae").eval()
        t = time.perf_counter()
        codes = encode_dataset(model, data, n=args.n, progress=False)
        encode_s = time.perf_counter() - t
        print(f"encode: {len(codes.keys):,} images in {encode_s:.1f} s = {len(codes.keys) / encode_s:,.0f} images/s "
              f"(latent {codes.latents.shape[1]})")
        ctx = analysis.Context(model, str(data), scratch / "out", analysis.AnalysisOptions(n=args.n))
        ctx.codes = codes
        import umap  # noqa: F401  (import cost reported separately below)

        for name in ("pca", "umap", "umap", "factors", "arithmetic", "scores", "metrics", "fid"):
            t = time.perf_counter()
            analysis.PROBES[name](ctx)
            print(f"probe {name:<11} {time.perf_counter() - t:7.1f} s")
        print("(the first umap line includes numba's one-off compilation; the second is the steady cost)")
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
