"""When does a model learn the colours of Varied renders? The health gates against training steps.

    python benchmarks/colour_steps.py [--recipe zoo/beta_vae] [--vary model.beta=0.1,1,4,10] [--set KEY=VALUE ...]
                                      [--steps 4000] [--every 500] [--size 32] [--data DIR --held-out DIR]

For each value of ``--vary`` a fresh model of ``--recipe`` (at ``--size`` px; ``--set`` overrides more of it,
e.g. model.width=32) trains on a ``--varied`` render (20,000 images unless --data), batches of 64, 2 loader
workers, with the recipe's own optimisers and learning-rate schedule (train_settings, as the trainer: warm-up,
cosine or constant, over ``--steps``) and the family's update rule (parameter groups, ``choose_updates``). Every
``--every`` steps it prints the health gates of latentds.analysis.health that the studies' models fail at ``cpu``
scale, on 512 held-out images: ``colour`` (foreground chroma error against a grey image's; passes <= 0.8) and
``reconstruction`` (against the trivial images; <= 0.8) for families with an encoder, and, on 256 prior samples,
``sample_colour`` (>= 0.25) and ``sample_diversity`` (0.1 to 2). For scale: beta-sweep's ``cpu`` runs train 936
steps, disc-strategies' Varied runs 625, kl-weight's 2,500 (at effective betas 2 alpha / 64 = 0.003 to 0.125:
its document's weighting), gan-walks' DCGAN 780.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import torch


def gates(model, real: torch.Tensor) -> dict:
    from latentds.analysis import health  # noqa: PLC0415
    from latentds.zoo.capabilities import capabilities_of  # noqa: PLC0415

    model.eval()
    out = {}
    with torch.no_grad():
        if capabilities_of(model).encoder:
            recon = model.decode(model.encode(real))
            out["colour"] = health.colour_gate(real, recon)["value"]
            out["reconstruction"] = health.reconstruction_gate(health.image_baselines(real, recon))["value"]
        samples = model.sample(256, generator=torch.Generator().manual_seed(0)).float()
    model.train()
    out["sample_colour"] = health.sample_colour_gate(real[:256], samples)["value"]
    out["sample_diversity"] = health.mean_pairwise_mse(samples) / health.mean_pairwise_mse(real[:256])
    return out


def curve(recipe_name: str, sets: list[str], data: str, held_out: str, steps: int, every: int, seed: int = 0):
    """Yield {step, seconds, gates...} every ``every`` steps of one model's training."""
    from latentds.datasets.shards import load_shards  # noqa: PLC0415
    from latentds.zoo.base import create  # noqa: PLC0415
    from latentds.zoo.capabilities import capabilities_of  # noqa: PLC0415
    from latentds.zoo.recipe import load_recipe  # noqa: PLC0415
    from latentds.zoo.train_settings import make_optimizer, set_learning_rate  # noqa: PLC0415

    torch.manual_seed(seed)
    recipe = load_recipe(recipe_name, sets)
    model = create(recipe.model["family"], **recipe.model)
    groups = model.parameter_groups()
    defaults = capabilities_of(model).group_defaults
    settings = {g: recipe.train.optim(g, defaults.get(g)) for g in groups}
    optimisers = {g: make_optimizer(settings[g], params) for g, params in groups.items()}
    stream = load_shards(data, batch_size=64, shuffle=1000, seed=seed)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)  # workers made anew each epoch
    real = next(iter(load_shards(held_out, batch_size=512)))["image"]
    step, start = 0, time.perf_counter()
    model.train()
    for epoch in itertools.count():
        stream.set_epoch(epoch)  # another shuffle each epoch, as the trainer's
        for batch in loader:
            values = model.losses(batch, step)
            chosen = model.choose_updates({g: {k: float(v.detach()) for k, v in t.items()} for g, t in values.items()},
                                          step)
            # as the trainer: every chosen group's gradients from the same weights, then its optimiser's step
            grads = {g: torch.autograd.grad(values[g]["loss"], groups[g], retain_graph=True, allow_unused=True)
                     for g in chosen}
            for g in chosen:
                set_learning_rate(optimisers[g], settings[g], step, steps)
                for p, grad in zip(groups[g], grads[g]):
                    p.grad = grad
                optimisers[g].step()
                optimisers[g].zero_grad(set_to_none=True)
            step += 1
            if step % every == 0:
                yield {"step": step, "seconds": round(time.perf_counter() - start),
                       **{k: round(v, 4) for k, v in gates(model, real).items()}}
            if step >= steps:
                return


def main() -> None:
    from latentds.render import RenderSpec, render_shards  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="zoo/beta_vae")
    parser.add_argument("--vary", default="model.beta=0.1,1,4,10", help="KEY=V1,V2,...: one model per value")
    parser.add_argument("--set", action="append", default=[], dest="sets", help="KEY=VALUE for every model")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--n", type=int, default=20000, help="images to render when --data is not given")
    parser.add_argument("--data", help="a --varied shard set at --size px")
    parser.add_argument("--held-out", help="another --varied shard set at --size px (another seed)")
    args = parser.parse_args()
    key, _, values = args.vary.partition("=")
    with tempfile.TemporaryDirectory() as tmp:
        data, held_out = args.data, args.held_out
        if data is None:
            data = str(Path(tmp) / "train")
            render_shards(RenderSpec("varied", n=args.n, size=args.size, shard_size=1000, seed=0), data)
        if held_out is None:
            held_out = str(Path(tmp) / "held-out")
            render_shards(RenderSpec("varied", n=512, size=args.size, shard_size=512, seed=1), held_out,
                          progress=False)
        print(f"{args.recipe} {' '.join(args.sets)}; {key} | step | s | colour (<= 0.8) | reconstruction (<= 0.8) | "
              "sample_colour (>= 0.25) | sample_diversity (0.1-2)", flush=True)
        for value in values.split(","):
            sets = [f"model.image_size={args.size}", *args.sets, f"{key}={value}"]
            for r in curve(args.recipe, sets, data, held_out, args.steps, args.every):
                cells = [f"{r[k]:.3f}" if k in r else "—" for k in
                         ("colour", "reconstruction", "sample_colour", "sample_diversity")]
                print(f"{value} | {r['step']} | {r['seconds']} | " + " | ".join(cells), "  " + json.dumps(r),
                      flush=True)


if __name__ == "__main__":
    main()
