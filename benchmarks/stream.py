"""Streaming throughput: float batches of 64 from cuboid shards vs the same images as a folder of PNG files.

    python benchmarks/stream.py [--data DIR] [--n 20000] [--workers 2] [--epochs 2]

Both loaders deliver (64, 3, 64, 64) float32 batches in [-1, 1], shuffled, from DataLoaders with the same number
of worker processes; ours also delivers every sample's labels and factor vector. Without --data, a --varied
set of --n images is rendered first (about a minute for 20,000 on 2 cores). Each loader runs --epochs epochs with
persistent workers; images/s is reported for the first epoch (worker start-up included) and the last.
First, the per-sample cost of the factor vector compiled from the manifest's factor table (--factors-only: just
that); latentds 0.1's hand-written cuboid accessor it replaced cost the same, ~3.5-4 µs a sample here.
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import torch


def timed_epochs(loader, epochs: int, set_epoch=None) -> list[float]:
    rates = []
    for epoch in range(epochs):
        if set_epoch:
            set_epoch(epoch)
        t, n = time.perf_counter(), 0
        for batch in loader:
            images = batch["image"] if isinstance(batch, dict) else batch[0]
            assert images.dtype == torch.float32 and images.shape[1:] == (3, 64, 64)
            n += images.shape[0]
        rates.append(n / (time.perf_counter() - t))
    return rates


def factor_vector_cost(n: int = 5000) -> float:
    """Microseconds per sample of the factor vector of a --varied render's table, over n labels (no rendering)."""
    import timeit

    from latentds.datasets.factors import FactorVector
    from latentds.render.factors import FACTORS, sample_labels

    vector = FactorVector([f.as_json(True) for f in FACTORS])
    labels = [sample_labels("varied", 0, i, 64) for i in range(n)]
    return min(timeit.repeat(lambda: [vector(lab) for lab in labels], number=1, repeat=5)) / n * 1e6


def export_folder(shards: Path, folder: Path) -> int:
    """The shard set's PNGs as folder/cuboids/KEY.png (ImageFolder wants one sub-folder per class)."""
    target = folder / "cuboids"
    target.mkdir(parents=True)
    n = 0
    for shard in sorted(shards.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".png"):
                    (target / member.name).write_bytes(tar.extractfile(member).read())
                    n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="an existing 64 px cuboid shard set")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--factors-only", action="store_true", help="only time the factor vector")
    args = parser.parse_args()
    print(f"factor vector from the manifest's table: {factor_vector_cost():.1f} µs a sample")
    if args.factors_only:
        return

    import torchvision
    from torchvision.transforms import v2

    from latentds.datasets.shards import load_shards
    from latentds.render import RenderSpec, render_shards

    scratch = Path(tempfile.mkdtemp(prefix="latentds-stream-"))
    try:
        data = args.data
        if data is None:
            data = scratch / "shards"
            render_shards(RenderSpec("varied", n=args.n, size=64, shard_size=1000), data, progress=False)
        n = export_folder(data, scratch / "folder")
        common = dict(num_workers=args.workers, persistent_workers=args.workers > 0)

        ds = load_shards(data, batch_size=64, shuffle=1000)
        ours = timed_epochs(torch.utils.data.DataLoader(ds, batch_size=None, **common), args.epochs, ds.set_epoch)

        to_float = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)])
        folder = torchvision.datasets.ImageFolder(str(scratch / "folder"), transform=to_float)
        theirs = timed_epochs(torch.utils.data.DataLoader(folder, batch_size=64, shuffle=True, drop_last=True,
                                                          **common), args.epochs)
    finally:
        shutil.rmtree(scratch)
    print(f"{n:,} images of 64x64, batches of 64, {args.workers} DataLoader workers, {args.epochs} epochs")
    print(f"latentds.load_shards (shards + labels + factors): first epoch {ours[0]:,.0f} images/s, "
          f"last {ours[-1]:,.0f} images/s")
    print(f"torchvision ImageFolder over PNG files:           first epoch {theirs[0]:,.0f} images/s, "
          f"last {theirs[-1]:,.0f} images/s")
    print(f"ratio (last epochs): {ours[-1] / theirs[-1]:.2f}x; target >= 3,000 images/s and faster than the folder: "
          f"{'met' if ours[-1] >= 3000 and ours[-1] > theirs[-1] else 'NOT met'}")


if __name__ == "__main__":
    main()
