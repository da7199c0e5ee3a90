"""What every study costs at a scale (default `full`, the published setting): images trained, training FLOPs
counted by PyTorch, and an estimate of GPU hours, per run and seed and per study.

    python benchmarks/study_cost.py [--scale full] [--seeds 3] [--tflops 50] [--markdown]

FLOPs per training image are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one forward and
backward pass of the run's model at the scale's config (every group's losses, as the trainer computes them), so
they follow the real architectures. The GPU estimate divides by ``--tflops`` sustained TFLOP/s: 50 is about 5%
of an H100's dense bf16 peak, what small convolutional networks at 32-128 px typically reach (their layers are too
small to fill the chip); at 64 px the data loader (PNG decode, about 57 us per image per core) gives 16 cores about
280,000 images/s, so it is not the bound. Small models are bound by kernel launches instead: each optimisation step is taken to
cost at least ``--step-ms`` (3 ms: an assumption, not a measurement; measure it with benchmarks/train.py on the
GPU when one is lent), and a run's time is the larger of the two. The estimate leaves out rendering the study's
data and the probes.
"""

from __future__ import annotations

import argparse
import math


def flops_per_image(recipe, batch: int = 8) -> float:
    """Forward + backward FLOPs of one training image of ``recipe``'s model (all groups' losses)."""
    import torch  # noqa: PLC0415
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    from latentds.zoo.base import create  # noqa: PLC0415

    model = create(recipe.model["family"], **recipe.model)
    size = model.config.image_size
    x = torch.rand(batch, 3, size, size) * 2 - 1
    from latentds.datasets.cuboids import FACTOR_NAMES  # noqa: PLC0415

    names = list(FACTOR_NAMES)
    batch_dict = {"image": x, "factors": torch.zeros(batch, len(names)),
                  "factor_mask": torch.ones(batch, len(names), dtype=torch.bool)}
    model.bind_factors(names)  # a cuboid render's columns
    with FlopCounterMode(display=False) as counter:
        losses = model.losses(batch_dict, 0)
        total = sum(terms["loss"] for terms in losses.values())
        total.backward()
    return counter.get_total_flops() / batch


def study_cost(name: str, scale: str, seeds: int, tflops: float, step_ms: float) -> list[dict]:
    from dataclasses import replace  # noqa: PLC0415

    from latentds.studies import load_study  # noqa: PLC0415
    from latentds.zoo.recipe import load_recipe  # noqa: PLC0415

    study = load_study(name, scale)
    rows = []
    for run in study.runs:
        data = study.data[run.data]
        if data.get("external"):
            continue
        overrides = [f"{k}={v!r}".replace("'", '"') if isinstance(v, str) else f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                     for k, v in run.sets.items()]
        recipe = load_recipe(run.recipe, overrides)
        epochs = run.train.get("epochs", recipe.train.epochs)
        images = data["n"] * (1 - recipe.data.holdout) * epochs
        try:
            per_image = flops_per_image(replace(recipe))
        except Exception as e:  # noqa: BLE001  (a family whose losses need real data: say so, keep going)
            rows.append({"study": name, "run": run.name, "images": images, "flops": None, "error": str(e)[:80]})
            continue
        batch = run.train.get("batch_size", recipe.train.batch_size)
        compute = images * per_image / (tflops * 1e12) / 3600
        steps = images / batch * step_ms / 1000 / 3600
        hours = max(compute, steps)
        rows.append({"study": name, "run": run.name, "images": images, "gflops_per_image": per_image / 1e9,
                     "bound": "FLOPs" if compute >= steps else "steps", "gpu_hours_per_seed": hours,
                     "gpu_hours": hours * seeds})
    return rows


def main() -> None:
    from latentds.studies import study_names  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="full")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tflops", type=float, default=50.0)
    parser.add_argument("--step-ms", type=float, default=3.0)
    args = parser.parse_args()
    print(f"| study | run | images trained per seed | GFLOPs per image | bound | GPU h per seed | "
          f"GPU h ({args.seeds} seeds) |")
    print("|---|---|---|---|---|---|---|")
    totals = {}
    for name in study_names():
        for row in study_cost(name, args.scale, args.seeds, args.tflops, args.step_ms):
            if row.get("flops", 0) is None:
                print(f"| {name} | {row['run']} | {row['images']:,.0f} | not counted ({row['error']}) | | |")
                continue
            totals[name] = totals.get(name, 0.0) + row["gpu_hours"]
            print(f"| {name} | {row['run']} | {row['images']:,.0f} | {row['gflops_per_image']:.2f} | "
                  f"{row['bound']} | {row['gpu_hours_per_seed']:.2f} | {row['gpu_hours']:.2f} |")
    print()
    for name, hours in totals.items():
        print(f"{name}: {hours:.1f} GPU hours ({args.tflops:g} sustained TFLOP/s, at least {args.step_ms:g} ms a step;"
              f" about {math.ceil(hours)} h)")


if __name__ == "__main__":
    main()
