"""When does a VAE learn the colours of Varied renders? The health gates against training steps, per KL weight.

    python benchmarks/colour_steps.py [--betas 0.1,1,4,10] [--steps 4000] [--every 500] [--size 32]
                                      [--data DIR --held-out DIR] [--latent 32]

For each beta a fresh ``beta_vae`` (the recipe's model at ``--size`` px, width 32, a ``--latent``-dimensional
latent; loss: summed squared error + beta * KL, one Adam at the recipe's 1e-3, 100 warm-up steps, cosine decay
over ``--steps``) trains on a ``--varied`` render (20,000 images unless --data), batches of 64, 2 loader workers.
Every ``--every`` steps it prints, on 512 held-out images, the gates of latentds.analysis.health that the studies'
VAEs fail at ``cpu`` scale: ``colour`` (foreground chroma error against a grey image's; passes <= 0.8),
``reconstruction`` (against the trivial images; <= 0.8) and, on 256 prior samples, ``sample_colour`` (>= 0.25)
and ``sample_diversity`` (0.1 to 2). beta-sweep's ``cpu`` runs train 936 steps, disc-strategies' Varied runs 625,
kl-weight's 2,500 (at effective betas 2 alpha / 64 = 0.003 to 0.125: its document's weighting).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import tempfile
import time
from pathlib import Path

import torch


def gates(model, real: torch.Tensor) -> dict:
    from latentds.analysis import health  # noqa: PLC0415

    model.eval()
    with torch.no_grad():
        recon = model.decode(model.encode(real))
        samples = model.sample(256, generator=torch.Generator().manual_seed(0)).float()
    model.train()
    return {"colour": health.colour_gate(real, recon)["value"],
            "reconstruction": health.reconstruction_gate(health.image_baselines(real, recon))["value"],
            "sample_colour": health.sample_colour_gate(real[:256], samples)["value"],
            "sample_diversity": health.mean_pairwise_mse(samples) / health.mean_pairwise_mse(real[:256])}


def curve(beta: float, data: str, held_out: str, steps: int, every: int, size: int, latent: int, seed: int = 0):
    """Yield {step, seconds, gates...} every ``every`` steps of one beta-VAE's training."""
    from latentds.datasets.shards import load_shards  # noqa: PLC0415
    from latentds.zoo.base import create  # noqa: PLC0415

    torch.manual_seed(seed)
    model = create("beta_vae", image_size=size, width=32, latent_dim=latent, beta=beta)
    stream = load_shards(data, batch_size=64, shuffle=1000, seed=seed)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)  # workers made anew each epoch
    real = next(iter(load_shards(held_out, batch_size=512)))["image"]
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    step, start = 0, time.perf_counter()
    for epoch in itertools.count():
        stream.set_epoch(epoch)  # another shuffle each epoch, as the trainer's
        for batch in loader:
            loss = model.losses(batch, step)["model"]["loss"]
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            if step % every == 0:
                yield {"beta": beta, "step": step, "seconds": round(time.perf_counter() - start),
                       **{k: round(v, 4) for k, v in gates(model, real).items()}}
            if step >= steps:
                return


def main() -> None:
    from latentds.render import RenderSpec, render_shards  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--betas", default="0.1,1,4,10")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--latent", type=int, default=32)
    parser.add_argument("--n", type=int, default=20000, help="images to render when --data is not given")
    parser.add_argument("--data", help="a --varied shard set at --size px")
    parser.add_argument("--held-out", help="another --varied shard set at --size px (another seed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, held_out = args.data, args.held_out
        if data is None:
            data = str(Path(tmp) / "train")
            render_shards(RenderSpec("varied", n=args.n, size=args.size, shard_size=1000, seed=0), data)
        if held_out is None:
            held_out = str(Path(tmp) / "held-out")
            render_shards(RenderSpec("varied", n=512, size=args.size, shard_size=512, seed=1), held_out,
                          progress=False)
        print("beta | step | s | colour (<= 0.8) | reconstruction (<= 0.8) | sample_colour (>= 0.25) | "
              "sample_diversity (0.1-2)", flush=True)
        for beta in (float(b) for b in args.betas.split(",")):
            for r in curve(beta, data, held_out, args.steps, args.every, args.size, args.latent):
                print(f"{r['beta']:g} | {r['step']} | {r['seconds']} | {r['colour']:.3f} | {r['reconstruction']:.3f}"
                      f" | {r['sample_colour']:.3f} | {r['sample_diversity']:.3f}", "  " + json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
