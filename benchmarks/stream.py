"""Streaming throughput: latentds.load_shards against a plain webdataset pipeline and the PNG decode-only ceiling,
side by side in one run, with a per-stage profile.

    python benchmarks/stream.py [--data DIR] [--n 10000] [--workers 2] [--epochs 2] [--rounds 3]
                                [--baseline SRC]   # also time load_shards from another checkout's src (before/after)
                                [--no-uint8]       # leave out load_shards(dtype="uint8")

Every loader delivers (64, 3, 64, 64) float32 batches in [-1, 1] with a shuffle buffer of 1,000, from DataLoaders
with persistent workers, but ``load_shards(dtype="uint8")``, which delivers them as uint8 (for a model that converts
on its device); ours also delivers every sample's labels and factor vector. The plain pipeline is
``WebDataset(...).shuffle(1000).decode("torchrgb").to_tuple("png", "json").batched(64)`` then ``x * 2 - 1``.
The ceiling is torchvision's ``decode_png`` over the PNG bytes already in memory, in one process (no tar, no
check, no labels, no float). Without --data, a --varied set of --n images is rendered first. Each loader runs in a
process of its own, one after the other, --rounds times; images/s is the last epoch's, best of the rounds. The
profile times each stage of one process (one thread, as in a DataLoader worker) in a loop of its own, in CPU µs
per image. On a shared machine the absolute figures move with the neighbours' load; the ratios, measured side by
side in one run, are what to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: its shared helpers
from cputime import cpu_seconds  # noqa: E402

HERE = Path(__file__).resolve()
BATCH, SHUFFLE = 64, 1000


def _shards(data: Path) -> list[str]:
    return sorted(str(p) for p in data.glob("*.tar"))


def _pngs(data: Path, limit: int | None = None) -> list[bytes]:
    from latentds.datasets.tarstream import tar_samples

    out = []
    for url in _shards(data):
        with open(url, "rb") as f:
            out += [s["png"] for s in tar_samples(f, url)]
        if limit and len(out) >= limit:
            return out[:limit]
    return out


def timed_epochs(loader, epochs: int, set_epoch=None, dtype: str = "float32") -> dict:
    """The last epoch's images/s (wall) and CPU µs per image, all processes and the workers alone."""
    import torch

    dtype = getattr(torch, dtype)
    for epoch in range(epochs):
        if set_epoch:
            set_epoch(epoch)
        t, n, (own, workers) = time.perf_counter(), 0, cpu_seconds()
        for batch in loader:
            images = batch["image"] if isinstance(batch, dict) else batch[0]
            assert images.dtype == dtype and images.shape[1:] == (3, 64, 64)
            n += images.shape[0]
        wall, (own2, workers2) = time.perf_counter() - t, cpu_seconds()
    return {"images_per_s": n / wall, "cpu_us": (own2 - own + workers2 - workers) / n * 1e6,
            "worker_cpu_us": (workers2 - workers) / n * 1e6}


def _minus_one_to_one(images):
    return images.mul_(2).sub_(1)


def task_ours(data: Path, workers: int, epochs: int, dtype: str = "float32") -> dict:
    import torch

    from latentds.datasets.shards import load_shards

    ds = load_shards(data, batch_size=BATCH, shuffle=SHUFFLE, **({"dtype": dtype} if dtype != "float32" else {}))
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
    return timed_epochs(loader, epochs, ds.set_epoch, dtype)


def task_ours_uint8(data: Path, workers: int, epochs: int) -> dict:
    return task_ours(data, workers, epochs, "uint8")


def task_webdataset(data: Path, workers: int, epochs: int) -> dict:
    import torch
    import webdataset as wds

    ds = (wds.WebDataset(_shards(data), shardshuffle=False, empty_check=False).shuffle(SHUFFLE)
          .decode("torchrgb").to_tuple("png", "json").batched(BATCH).map_tuple(_minus_one_to_one, None))
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
    return timed_epochs(loader, epochs)


def task_ceiling(data: Path, workers: int, epochs: int) -> dict:
    """torchvision's decode_png over every PNG of the set, bytes in memory, one process and one thread."""
    import torch
    from torchvision.io import decode_png

    torch.set_num_threads(1)
    pngs = [torch.frombuffer(bytearray(p), dtype=torch.uint8) for p in _pngs(data)]
    best, cpu = 0.0, float("inf")
    for _ in range(max(epochs, 2)):
        t, c = time.perf_counter(), time.process_time()
        for p in pngs:
            decode_png(p)
        best = max(best, len(pngs) / (time.perf_counter() - t))
        cpu = min(cpu, (time.process_time() - c) / len(pngs) * 1e6)
    return {"images_per_s": best, "cpu_us": cpu, "worker_cpu_us": cpu}


def task_stages(data: Path, workers: int, epochs: int, n: int = 3000) -> dict:
    """CPU µs per image of each stage of load_shards, each in a loop of its own, one process, one thread."""
    import pickle
    from multiprocessing.reduction import ForkingPickler

    import orjson
    import torch

    from latentds.datasets.handover import handed_over
    from latentds.datasets.shards import collate, load_shards
    from latentds.datasets.tarstream import tar_samples
    from latentds.shardsets import png as pngmod

    torch.set_num_threads(1)
    clock, us = time.process_time, 1e6 / n
    ds = load_shards(data, batch_size=BATCH)
    out = {}
    t = clock()
    raw = []
    for url in _shards(data):
        with open(url, "rb") as f:
            raw += list(tar_samples(f, url))
        if len(raw) >= n:
            break
    raw = raw[:n]
    out["tar"] = (clock() - t) * us
    t = clock()
    plain = [pngmod.plain_png(s["png"]) for s in raw]
    out["check (inflate)"] = (clock() - t) * us
    t = clock()
    for s in raw:
        pngmod.decode_plain_png(s["png"])
    out["decode"] = (clock() - t) * us - out["check (inflate)"]
    t = clock()
    for s in raw:
        orjson.loads(s["json"])  # parsed to be checked and read, then dropped (the stream keeps the document)
    out["json"] = (clock() - t) * us
    labels = [orjson.loads(s["json"]) for s in raw]
    t = clock()
    for lab in labels:
        ds.factors(lab)
    out["factors"] = (clock() - t) * us
    del labels
    decoded = [ds._decode(s) for s in raw]
    t = clock()
    batches = [collate(decoded[i:i + BATCH]) for i in range(0, n - BATCH + 1, BATCH)]
    out["collate"] = (clock() - t) * us
    t = clock()
    sent = [bytes(ForkingPickler.dumps(handed_over(b, None))) for b in batches]
    out["hand-over (worker)"] = (clock() - t) * us
    t = clock()
    for message in sent:
        pickle.loads(message)
    out["arrival (uint8)"] = (clock() - t) * us
    t = clock()
    for b in batches:
        ds.transform.to_float(b["image"])
    out["float"] = (clock() - t) * us
    t = clock()
    for _ in ds:
        pass
    whole = (clock() - t) * 1e6 / ds.epoch_samples()
    del plain
    return {"stages": out, "whole": whole, "torchvision_decode": _tv_decode_us(raw)}


def _tv_decode_us(raw: list[dict]) -> float:
    import torch
    from torchvision.io import decode_png

    t = time.process_time()
    for s in raw:
        decode_png(torch.frombuffer(bytearray(s["png"]), dtype=torch.uint8))
    return (time.process_time() - t) * 1e6 / len(raw)


TASKS = {"ours": task_ours, "ours_uint8": task_ours_uint8, "webdataset": task_webdataset, "ceiling": task_ceiling,
         "stages": task_stages}


def _run(task: str, data: Path, workers: int, epochs: int, src: str | None = None) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, str(HERE), "--task", task, "--data", str(data), "--workers", str(workers),
               "--epochs", str(epochs)]
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(data: Path, workers: int, epochs: int, rounds: int, baseline: str | None, uint8: bool = True) -> dict:
    kinds = {f"ours, {workers} workers": ("ours", workers, None), "ours, 1 worker": ("ours", 1, None),
             f"webdataset, {workers} workers": ("webdataset", workers, None), "ceiling": ("ceiling", 0, None)}
    if uint8:
        kinds[f"ours uint8, {workers} workers"] = ("ours_uint8", workers, None)
        kinds["ours uint8, 1 worker"] = ("ours_uint8", 1, None)
    if baseline:
        kinds[f"baseline, {workers} workers"] = ("ours", workers, baseline)
        kinds["baseline, 1 worker"] = ("ours", 1, baseline)
    runs, load = {k: [] for k in kinds}, [os.getloadavg()[0]]
    for _ in range(rounds):
        for kind, (task, w, src) in kinds.items():
            runs[kind].append(_run(task, data, w, epochs, src))
            load.append(os.getloadavg()[0])
    return {"runs": runs, "stages": _run("stages", data, 0, epochs), "load": load}


def report(figures: dict, workers: int, n: int, epochs: int, rounds: int) -> None:
    """images/s (wall, best round) and CPU µs per image (least of the rounds); ratios of both."""
    runs = figures["runs"]
    best = {k: max(r["images_per_s"] for r in v) for k, v in runs.items()}
    cpu = {k: min(r["cpu_us"] for r in v) for k, v in runs.items()}
    worker = {k: min(r["worker_cpu_us"] for r in v) for k, v in runs.items()}
    load = figures.get("load") or [os.getloadavg()[0]]
    print(f"{n:,} images of 64x64, batches of {BATCH} float [-1, 1] (uint8 where named), shuffle {SHUFFLE}, "
          f"last of {epochs} epochs, "
          f"{rounds} rounds; load average (1 min) {min(load):.1f}-{max(load):.1f} while measured, on "
          f"{os.cpu_count()} cores")
    print("images/s: wall clock, best round [slowest-fastest]; CPU: µs per image of all processes (least of the "
          "rounds); ratios: wall (CPU)")
    wds_key = f"webdataset, {workers} workers"
    for kind, rs in runs.items():
        rates = [r["images_per_s"] for r in rs]
        tail = ""
        if kind.endswith(f"{workers} workers") and kind != wds_key:
            tail = f"  {best[kind] / best[wds_key]:.2f}x ({cpu[wds_key] / cpu[kind]:.2f}x) plain webdataset"
        if kind.endswith("1 worker"):
            tail = (f"  {best[kind] / best['ceiling']:.2f} ({cpu['ceiling'] / worker[kind]:.2f}, the worker's CPU) "
                    "of the decode-only ceiling")
        print(f"{kind:28s} {best[kind]:8,.0f} images/s [{min(rates):,.0f}-{max(rates):,.0f}], CPU {cpu[kind]:4.0f} µs"
              f" (workers {worker[kind]:.0f}){tail}")
    st = figures["stages"]
    print("1 process, 1 thread, CPU µs per image, each stage in a loop of its own: "
          + ", ".join(f"{k} {v:.0f}" for k, v in st["stages"].items()) + f"; sum {sum(st['stages'].values()):.0f}; "
          f"the whole stream without workers {st['whole']:.0f}; torchvision decode_png alone {st['torchvision_decode']:.0f}")
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="an existing 64 px cuboid shard set")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=None, help="a src directory with another latentds to time beside")
    parser.add_argument("--no-uint8", dest="uint8", action="store_false", help="leave out dtype='uint8'")
    parser.add_argument("--task", choices=sorted(TASKS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.task:
        print(json.dumps(TASKS[args.task](args.data, args.workers, args.epochs)))
        return

    scratch = Path(tempfile.mkdtemp(prefix="latentds-stream-"))
    try:
        data = args.data
        if data is None:
            from latentds.render import RenderSpec, render_shards

            data = scratch / "shards"
            render_shards(RenderSpec("varied", n=args.n, size=64, shard_size=1000), data, progress=False)
        n = sum(1 for _ in _pngs(data))
        figures = measure(data, args.workers, args.epochs, args.rounds, args.baseline, args.uint8)
    finally:
        shutil.rmtree(scratch)
    report(figures, args.workers, n, args.epochs, args.rounds)


if __name__ == "__main__":
    main()
