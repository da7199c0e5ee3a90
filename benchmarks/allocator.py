"""What ``latentds.allocator.keep_freed_memory()`` changes in a CPU training step, side by side.

    python benchmarks/allocator.py [--families dcgan,vae] [--size 32] [--width 64] [--batch 64] [--steps 30]
                                   [--threads 1] [--rounds 2]

Each measurement is its own process (mallopt settings last for the process): the bare training step of a family
(benchmarks/train.py's ``bare_step``: its packaged recipe, ``--size`` px, ``--width`` filters, its optimisers and
update rule) on one batch of random images held in memory, so the allocator is all that differs. glibc's defaults
and the raised thresholds alternate, ``--rounds`` times each. Printed per family and setting (median over rounds):
wall ms a step, user and system CPU ms a step, page faults a step and the peak resident memory; then the ratios.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: its shared helpers


def measure(family: str, size: int, width: int, batch: int, steps: int, threads: int, kept: bool) -> dict:
    """One process's figures (run as ``allocator.py --child ...``)."""
    import torch

    from latentds.allocator import keep_freed_memory
    from latentds.zoo.recipe import load_recipe
    from train import bare_step

    applied = keep_freed_memory() if kept else False
    torch.set_num_threads(threads)
    recipe = load_recipe(f"zoo/{family}", [f"model.image_size={size}", f"model.width={width}",
                                           f"train.batch_size={batch}"])
    model, step = bare_step(recipe, torch.device("cpu"))
    images = {"image": torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1}
    for i in range(3):  # warm-up
        step(images, i)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for i in range(steps):
        step(images, i)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"applied": applied, "wall_ms": 1e3 * wall / steps,
            "user_ms": 1e3 * (after.ru_utime - before.ru_utime) / steps,
            "sys_ms": 1e3 * (after.ru_stime - before.ru_stime) / steps,
            "faults": (after.ru_minflt - before.ru_minflt) / steps, "rss_mib": after.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="dcgan,vae")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each process")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", choices=("default", "kept"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = (args.size, args.width, args.batch, args.steps, args.threads)
    if args.child:
        print(json.dumps(measure(args.families, *shape, kept=args.child == "kept")))
        return
    rows = {}
    for family in args.families.split(","):
        runs = {"default": [], "kept": []}
        for _ in range(args.rounds):
            for setting in runs:
                out = subprocess.run([sys.executable, __file__, "--child", setting, "--families", family,
                                      "--size", str(args.size), "--width", str(args.width), "--batch",
                                      str(args.batch), "--steps", str(args.steps), "--threads", str(args.threads)],
                                     check=True, capture_output=True, text=True).stdout
                runs[setting].append(json.loads(out.splitlines()[-1]))
        if not all(r["applied"] for r in runs["kept"]):
            sys.exit("keep_freed_memory() changed nothing here (not glibc, or MALLOC_* / GLIBC_TUNABLES / LD_PRELOAD "
                     "set): unset them to compare")
        rows[family] = {s: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "applied"}
                        for s, rs in runs.items()}
        print(family, json.dumps(rows[family]), flush=True)
    print(f"\n{args.size} px, width {args.width}, batch {args.batch}, {args.threads} torch thread(s), {args.steps} "
          f"steps after 3 warm-up steps, median of {args.rounds} rounds alternating; measured "
          f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}:")
    print("| family | malloc | wall ms/step | user ms | system ms | page faults/step | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for family, settings in rows.items():
        for setting, r in settings.items():
            name = "glibc defaults" if setting == "default" else "keep_freed_memory()"
            print(f"| {family} | {name} | {r['wall_ms']:.1f} | {r['user_ms']:.1f} | {r['sys_ms']:.1f} | "
                  f"{r['faults']:,.0f} | {r['rss_mib']:.0f} |")
    print()
    for family, s in rows.items():
        cpu = (s["default"]["user_ms"] + s["default"]["sys_ms"]) / (s["kept"]["user_ms"] + s["kept"]["sys_ms"])
        print(f"{family}: a step's time with glibc's defaults over its time with keep_freed_memory(): wall "
              f"{s['default']['wall_ms'] / s['kept']['wall_ms']:.2f}, CPU {cpu:.2f}")


if __name__ == "__main__":
    main()
