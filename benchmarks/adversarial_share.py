"""How much of vae_disc's decoder gradient comes from the adversarial term, per adversarial weight.

    python benchmarks/adversarial_share.py [--weights 1,10,100,1000] [--steps 150] [--n 2000] [--size 64]

For each weight a fresh vae_disc (the packaged recipe's model, strategy "both") trains ``--steps`` steps on a
``--varied`` render; then, on held-out batches, the decoder's gradient is split into the VAE part (summed squared
error + beta * KL) and the adversarial part (adversarial_weight * the generator's loss), and the table prints the
adversarial share ||g_adv|| / (||g_vae|| + ||g_adv||), the discriminator's accuracy over the last quarter of training
and the reconstruction MSE. With the summed squared error over 64 x 64 x 3 pixels, weight 1 leaves the
adversarial term about 1% of the VAE loss: the update strategies then hardly matter. The study's weight is the
smallest whose share is large enough for the discriminator to act (docs/studies-method.md).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def decoder_share(model, x: torch.Tensor) -> float:
    from latentds.zoo.models.vae import kl_normal, reparameterise  # noqa: PLC0415

    c = model.config
    mu, logvar = model.posterior(x)
    recon = model.decoder(reparameterise(mu, logvar))
    vae = (recon - x).pow(2).flatten(1).sum(1).mean() + c.beta * kl_normal(mu, logvar)
    fake = torch.cat([recon, model.decoder(torch.randn_like(mu))])
    logits = model.discriminator(fake)
    adversarial = c.adversarial_weight * F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    params = list(model.decoder.parameters())
    g_vae = torch.autograd.grad(vae, params, retain_graph=True)
    g_adv = torch.autograd.grad(adversarial, params)
    n_vae = torch.sqrt(sum(g.pow(2).sum() for g in g_vae))
    n_adv = torch.sqrt(sum(g.pow(2).sum() for g in g_adv))
    return float(n_adv / (n_vae + n_adv))


def measure(weight: float, data: str, held_out: str, steps: int, size: int, seed: int = 0) -> dict:
    from latentds.datasets.shards import load_shards  # noqa: PLC0415
    from latentds.zoo.base import create  # noqa: PLC0415
    from latentds.zoo.recipe import load_recipe  # noqa: PLC0415

    torch.manual_seed(seed)
    recipe = load_recipe("zoo/vae_disc", [f"model.image_size={size}", f"model.adversarial_weight={weight}"])
    model = create(recipe.model["family"], **recipe.model)
    groups = model.parameter_groups()
    optimisers = {g: torch.optim.Adam(p, lr=recipe.train.lr) for g, p in groups.items()}
    accuracy, step = [], 0
    model.train()
    start = time.process_time(), time.perf_counter()
    while step < steps:
        for batch in load_shards(data, batch_size=32, shuffle=500, seed=step):
            values = model.losses(batch, step)
            chosen = model.choose_updates({g: {k: float(v.detach()) for k, v in t.items()} for g, t in values.items()},
                                          step)
            # as the trainer: every chosen group's gradients from the same weights, then its optimiser's step
            grads = {g: torch.autograd.grad(values[g]["loss"], groups[g], retain_graph=True) for g in chosen}
            for g in chosen:
                for p, grad in zip(groups[g], grads[g]):
                    p.grad = grad
                optimisers[g].step()
                optimisers[g].zero_grad(set_to_none=True)
            accuracy.append(float(values["discriminator"]["accuracy"]))
            step += 1
            if step >= steps:
                break
    cpu, wall = time.process_time() - start[0], time.perf_counter() - start[1]
    model.eval()
    shares, errors = [], []
    for i, batch in enumerate(load_shards(held_out, batch_size=32)):
        x = batch["image"]
        shares.append(decoder_share(model, x))
        with torch.no_grad():
            errors.append(float((model.reconstruct(x) - x).pow(2).mean()))
        if i == 3:
            break
    last = accuracy[-max(1, len(accuracy) // 4):]
    return {"weight": weight, "share": statistics.fmean(shares), "disc_accuracy": statistics.fmean(last),
            "mse": statistics.fmean(errors), "cpu_per_step": cpu / steps, "wall_per_step": wall / steps}


def main() -> None:
    from latentds.render import RenderSpec, render_shards  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="1,10,100,1000")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, held_out = Path(tmp) / "train", Path(tmp) / "held-out"
        render_shards(RenderSpec("varied", n=args.n, size=args.size, shard_size=500, seed=11), data, progress=False)
        render_shards(RenderSpec("varied", n=256, size=args.size, shard_size=256, seed=12), held_out, progress=False)
        print("| adversarial weight | decoder gradient share | discriminator accuracy (last quarter) | held-out MSE | s/step CPU (wall) |")
        print("|---|---|---|---|---|")
        for weight in (float(w) for w in args.weights.split(",")):
            r = measure(weight, str(data), str(held_out), args.steps, args.size)
            print(f"| {r['weight']:g} | {r['share']:.3f} | {r['disc_accuracy']:.3f} | {r['mse']:.4f} | {r['cpu_per_step']:.2f} ({r['wall_per_step']:.2f}) |",
                  flush=True)


if __name__ == "__main__":
    main()
