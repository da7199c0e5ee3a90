"""Trainer overhead: `latentds train zoo/vae` machinery vs a bare PyTorch loop, same model, batches, optimiser.

    python benchmarks/train.py [--data DIR] [--steps 60] [--device auto]

Both run the VAE recipe's model (64 px, latent 128) with Adam on batches of 64 from the same shard stream and
DataLoader settings; the trainer adds its progress bar, scheduler, logging, checkpoints and figures (as
configured in the recipe). Without --data, 4,000 `--varied` images are rendered first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch


def bare_loop(recipe, steps: int, device: torch.device) -> float:
    """images/s of the plainest loop over the same model, stream and optimiser (after 5 warm-up steps)."""
    from latentds.datasets.shards import load_shards
    from latentds.zoo.base import create

    torch.manual_seed(recipe.train.seed)
    model = create(recipe.model["family"], **recipe.model).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.train.lr, betas=tuple(recipe.train.betas))
    data = load_shards(recipe.data.shards, batch_size=recipe.train.batch_size, shuffle=recipe.data.shuffle)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=recipe.data.num_workers)
    done, images, start = 0, 0, None
    while done < steps + 5:
        for batch in loader:
            if done == 5:
                start, images = time.perf_counter(), 0
            x = batch["image"].to(device)
            optimizer.zero_grad(set_to_none=True)
            model.loss(x)["loss"].backward()
            optimizer.step()
            done, images = done + 1, images + x.shape[0]
            if done == steps + 5:
                break
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from latentds.render import RenderSpec, render_shards
    from latentds.zoo.recipe import load_recipe, with_options
    from latentds.zoo.trainer import _device, train

    scratch = Path(tempfile.mkdtemp(prefix="latentds-train-"))
    try:
        data = args.data
        if data is None:
            data = scratch / "shards"
            render_shards(RenderSpec("varied", n=4000, size=64, shard_size=500), data, progress=False)
        recipe = with_options(load_recipe("zoo/vae"), max_steps=args.steps + 5, device=args.device)
        recipe = replace(recipe, data=replace(recipe.data, shards=str(data)))
        device = _device(recipe.train.device, 0)
        bare = bare_loop(recipe, args.steps, device)

        run = scratch / "run"
        train(recipe, run, progress=False)
        rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
        # the trainer's own images/s per logging window; the first window holds the warm-up steps
        ours = sum(r["images_per_s"] for r in rows[1:]) / max(1, len(rows[1:]))
    finally:
        shutil.rmtree(scratch)
    overhead = bare / ours - 1
    print(f"VAE recipe (64 px, latent 128, batch 64, Adam) on {device}, {args.steps} steps:")
    print(f"  latentds trainer:  {ours:,.1f} images/s (progress bar, schedule, metrics, checkpoints every "
          f"{recipe.train.checkpoint_every} steps)")
    print(f"  bare PyTorch loop: {bare:,.1f} images/s")
    print(f"  trainer overhead: {overhead:+.1%} (target < 10%: {'met' if overhead < 0.10 else 'NOT met'})")


if __name__ == "__main__":
    main()
