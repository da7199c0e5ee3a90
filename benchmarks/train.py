"""Trainer overhead per family: `latentds train zoo/NAME` vs a bare loop of the same family, side by side.

    python benchmarks/train.py [--families vae,vae_disc,...] [--steps 40] [--device auto] [--size 64]
                               [--plain DIR --pairs DIR --groups DIR]

For every family both loops run its packaged recipe's model (``--size`` px; DCGAN's 128 px default is lowered to
it) on the same batches (the family's batch kind: plain, same-identity pairs, one-factor groups; the same stream,
DataLoader settings and seed), the same optimisers (per-group settings from the recipe) and the same update rule
(``losses`` -> ``choose_updates`` -> each chosen group's gradients -> its optimiser). The bare loop does nothing
else; the trainer adds its progress bar, LR schedule, loss-value reduction, metrics.jsonl, checkpoints (as the
recipe sets them) and epoch figures. Without the DIR options, 4,000 images of each kind are rendered first.
Both loops run with ``latentds.allocator.keep_freed_memory()`` (the trainer's setting; benchmarks/allocator.py
measures what it changes).
Images/s exclude the first 5 steps (warm-up) in both.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: its shared helpers
from cputime import cpu_seconds as process_and_children  # noqa: E402


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its live children (the DataLoader workers)."""
    return sum(process_and_children())


def bare_step(recipe, device: torch.device):
    """(model, step(batch, i)): the family's model from ``recipe`` and the plainest training step with its own
    update rule (``losses`` -> ``choose_updates`` -> each chosen group's gradients -> its optimiser)."""
    from latentds.zoo.base import create
    from latentds.zoo.capabilities import capabilities_of

    t = recipe.train
    torch.manual_seed(t.seed)
    model = create(recipe.model["family"], **recipe.model).to(device).train()
    groups = model.parameter_groups()
    optimizers = {}
    for g, params in groups.items():
        s = t.optim(g, capabilities_of(model).group_defaults.get(g))
        kind = torch.optim.AdamW if s.optimizer == "adamw" else torch.optim.Adam
        optimizers[g] = kind(params, lr=s.lr, betas=tuple(s.betas), weight_decay=s.weight_decay)

    def step(batch: dict, i: int) -> None:
        terms = model.losses(batch, i)
        values = {g: {k: v.item() for k, v in group.items()} for g, group in terms.items()}
        wanted = set(model.choose_updates(values, i))
        chosen = [g for g in groups if g in wanted]
        grads = {g: torch.autograd.grad(terms[g]["loss"], groups[g], allow_unused=True,
                                        retain_graph=n < len(chosen) - 1) for n, g in enumerate(chosen)}
        for g in chosen:
            optimizers[g].zero_grad(set_to_none=True)
            for p, grad in zip(groups[g], grads[g]):
                p.grad = grad
            optimizers[g].step()

    return model, step


def bare_loop(recipe, steps: int, device: torch.device) -> tuple[float, float]:
    """(images/s of wall time, images per CPU-second) of the plainest loop with the family's own update rule."""
    from latentds.datasets.shards import load_shards, resize_for
    from latentds.zoo.capabilities import capabilities_of

    t, d = recipe.train, recipe.data
    model, step = bare_step(recipe, device)
    data = load_shards(d.shards, batch_size=t.batch_size, shuffle=d.shuffle, seed=t.seed,
                       size=resize_for(d.shards, model.config.image_size),
                       batches=d.batches or capabilities_of(model).batches,
                       pair_label=d.pair_label)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=d.num_workers,
                                         pin_memory=device.type == "cuda")
    done, images, start = 0, 0, None
    while done < steps + 5:
        batches = iter(loader)
        for batch in batches:
            if done == 5:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start, images, cpu_start = time.perf_counter(), 0, cpu_seconds()
            step({k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}, done)
            done, images = done + 1, images + batch["image"].shape[0]
            if done == steps + 5:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = images / (time.perf_counter() - start)
    per_cpu = images / (cpu_seconds() - cpu_start)
    del batches  # stop the loader's workers now, not in a process forked later
    return rate, per_cpu


def trainer_rate(recipe, scratch: Path) -> float:
    from latentds.zoo.trainer import train

    run = scratch / f"run-{recipe.model['family']}"
    train(recipe, run, progress=False)
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    shutil.rmtree(run)
    # the trainer's own images/s per 5-step logging window (equal images each: their harmonic mean is images over
    # time); the first window holds the warm-up steps
    rates = [r["images_per_s"] for r in rows[1:] if "images_per_s" in r]
    return len(rates) / sum(1 / r for r in rates)


def render_sets(scratch: Path, size: int) -> dict[str, Path]:
    from latentds.render import RenderSpec, render_shards

    specs = {"plain": RenderSpec("varied", n=4000, size=size, shard_size=500),
             "pairs": RenderSpec("varied", n=4000, size=size, shard_size=500, identities=100),
             "groups": RenderSpec("varied", n=4000, size=size, shard_size=500, sequence="phi_0,theta_0,lambda_0",
                                  steps=8)}
    sets = {}
    for kind, spec in specs.items():
        sets[kind] = scratch / kind
        render_shards(spec, sets[kind], progress=False)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=None, help="comma-separated [default: every registered family]")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers in both loops")
    for kind in ("plain", "pairs", "groups"):
        parser.add_argument(f"--{kind}", type=Path, default=None, help=f"a {kind}-batch shard set to use")
    args = parser.parse_args()

    from latentds.allocator import keep_freed_memory
    from latentds.zoo.base import REGISTRY, families
    from latentds.zoo.capabilities import capabilities_of
    from latentds.zoo.recipe import load_recipe, with_options
    from latentds.zoo.train_settings import training_device

    keep_freed_memory()  # as train() does: the bare loop runs first, under the same allocator settings
    scratch = Path(tempfile.mkdtemp(prefix="latentds-train-"))
    rows = []
    try:
        sets = {k: getattr(args, k) for k in ("plain", "pairs", "groups")}
        if not all(sets.values()):
            sets = render_sets(scratch, args.size)
        chosen = args.families.split(",") if args.families else families()
        for family in chosen:
            recipe = load_recipe(f"zoo/{family}", [f"model.image_size={args.size}", "train.log_every=5",
                                                   f"data.num_workers={args.workers}"])
            recipe = with_options(recipe, max_steps=args.steps + 5, device=args.device)
            kind = recipe.data.batches or capabilities_of(REGISTRY.get(family)).batches
            recipe = replace(recipe, data=replace(recipe.data, shards=str(sets[kind])))
            device = training_device(recipe.train.device, 0)
            bare, per_cpu = bare_loop(recipe, args.steps, device)
            ours = trainer_rate(recipe, scratch)
            rows.append((family, kind, recipe.train.batch_size, ours, bare, per_cpu))
            print(f"{family:<12} {ours:>9,.1f} img/s trainer  {bare:>9,.1f} img/s bare  {per_cpu:>7,.1f} img per "
                  f"CPU-s bare  overhead {bare / ours - 1:+.1%}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    cores, load = os.cpu_count(), os.getloadavg()[0]
    print(f"\n{args.size} px on {device}, {args.steps} timed steps after 5 warm-up steps, {args.workers} loader "
          f"workers, checkpoints as each recipe sets them; measured {datetime.date.today()}, {platform.machine()}, "
          f"{cores} cores, load average {load:.1f}. img/s are wall time (they depend on what else the machine runs); "
          f"img per CPU-s (the bare loop, loader workers included) times the cores is the most an idle machine "
          f"gives:")
    print("| family | batches | batch | trainer img/s (wall) | bare loop img/s (wall) | bare loop img per CPU-s | "
          "overhead |")
    print("|---|---|---|---|---|---|---|")
    for family, kind, batch, ours, bare, per_cpu in rows:
        flag = "" if bare / ours - 1 < 0.10 else " (over 10%)"
        print(f"| {family} | {kind} | {batch} | {ours:,.1f} | {bare:,.1f} | {per_cpu:,.1f} | "
              f"{bare / ours - 1:+.1%}{flag} |")


if __name__ == "__main__":
    main()
