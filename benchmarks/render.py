"""Rendering throughput: `latentds render --varied` end to end vs a naive pyrender loop.

    python benchmarks/render.py [--n 10000] [--size 64] [--workers N] [--naive 100]

Prints:
- end-to-end images/s of render_shards (factors -> PNG + JSON in finished, verified shards) on all cores,
  with start-up and steady (from the difference between a run of n/5 and one of n images);
- where one process spends its time per image (label sampling, pose + GL render, PNG, JSON);
- a naive loop that builds a new pyrender scene and OffscreenRenderer for every image, in one process;
- the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time


def naive_loop(n: int, size: int) -> float:
    """images/s of the obvious approach: build everything per image (run in a fresh process)."""
    code = f"""
import os, time, io
os.environ.setdefault("PYOPENGL_PLATFORM", "egl"); os.environ.setdefault("LP_NUM_THREADS", "1")
import numpy as np, pyrender, trimesh
from PIL import Image
from latentds.render.factors import sample_labels
from latentds.render.scene import cuboid_poses, orbit_pose
t = time.perf_counter()
for i in range({n}):
    labels = sample_labels("varied", 0, i, {size})
    scene = pyrender.Scene(bg_color=[0, 0, 0, 1], ambient_light=[labels["ambient"]] * 3)
    c = labels["cuboid"]
    for pose, color in zip(cuboid_poses(labels), labels["colors"]):
        box = trimesh.creation.box(extents=[c["length"], c["height"], c["width"]])
        mat = pyrender.MetallicRoughnessMaterial(baseColorFactor=[*color, 1.0], metallicFactor=0.0, roughnessFactor=0.6)
        scene.add(pyrender.Mesh.from_trimesh(box, material=mat, smooth=False), pose=pose)
    scene.add(pyrender.DirectionalLight(color=labels["light"]["color"], intensity=labels["light"]["intensity"]),
              pose=orbit_pose(labels["light"]))
    for s in labels["spot_lights"]:
        scene.add(pyrender.SpotLight(color=s["color"], intensity=s["intensity"], innerConeAngle=s["inner_cone"],
                                     outerConeAngle=s["outer_cone"]), pose=orbit_pose(s))
    for p in labels["point_lights"]:
        scene.add(pyrender.PointLight(color=p["color"], intensity=p["intensity"]), pose=orbit_pose(p))
    scene.add(pyrender.PerspectiveCamera(yfov=np.radians(labels["camera"]["yfov"])), pose=orbit_pose(labels["camera"]))
    r = pyrender.OffscreenRenderer({size}, {size})
    color, _ = r.render(scene)
    r.delete()
    Image.fromarray(color).save(io.BytesIO(), format="PNG")
print({n} / (time.perf_counter() - t))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def per_image_breakdown(n: int, size: int) -> dict[str, float]:
    """Milliseconds per image for each stage, in this process (one persistent renderer)."""
    from latentds.render.factors import CUBOID, sample_labels
    from latentds.render.renderer import process_renderer
    from latentds.shardsets.members import encode_json, encode_png

    renderer = process_renderer(size, CUBOID)
    renderer.render(sample_labels("varied", 0, 0, size))  # compile the first shader programs
    for i in range(200):  # warm up: programs for every light combination
        renderer.render(sample_labels("varied", 1, i, size))
    t0 = time.perf_counter()
    labels = [sample_labels("varied", 0, i, size) for i in range(n)]
    t1 = time.perf_counter()
    images = [renderer.render(lab)["rgb"] for lab in labels]
    t2 = time.perf_counter()
    for im in images:
        encode_png(im)
    t3 = time.perf_counter()
    for lab in labels:
        encode_json(lab)
    t4 = time.perf_counter()
    ms = 1000 / n
    return {"labels": (t1 - t0) * ms, "pose+render": (t2 - t1) * ms, "png": (t3 - t2) * ms, "json": (t4 - t3) * ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--naive", type=int, default=100, help="images for the naive loop")
    args = parser.parse_args()

    from latentds.render import RenderSpec, render_shards, verify_shards
    from latentds.shardsets.producer import default_workers

    workers = args.workers or default_workers()

    def timed_render(n: int) -> tuple[float, float]:
        out = tempfile.mkdtemp(prefix="latentds-bench-")
        try:
            spec = RenderSpec("varied", n=n, size=args.size, shard_size=500)
            t = time.perf_counter()
            report = render_shards(spec, out, workers=workers, progress=False)
            wall = time.perf_counter() - t
            assert not verify_shards(out)
            return wall, sum(r["bytes"] for r in report.manifest["shards"]) / 1e6
        finally:
            shutil.rmtree(out)

    small = max(args.n // 5, 1000)
    wall_small, _ = timed_render(small)
    wall, mb = timed_render(args.n)
    ours = args.n / wall
    steady = (args.n - small) / (wall - wall_small)  # start-up (GL probe, worker spawn, shader compiles) cancels
    print(f"latentds render --varied --size {args.size} on {workers} workers: {args.n:,} images in {wall:.1f} s "
          f"= {ours:,.0f} images/s with start-up; {steady:,.0f} images/s steady "
          f"({steady / workers:,.0f} per worker; start-up {wall - args.n / steady:.1f} s); {mb:.1f} MB")
    print(f"  -> 500,000 images would take {500_000 / steady / 60:,.1f} min")

    # Breakdown runs in a child so that its GL context does not outlive into the naive loop's process.
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import render as b; "
            f"print(json.dumps(b.per_image_breakdown(2000, {args.size})))")
    import json

    env = dict(os.environ, LP_NUM_THREADS="1")
    stages = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                       env=env).stdout.strip().splitlines()[-1])
    total = sum(stages.values())
    print("one process, ms per image: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items())
          + f"; total {total:.2f} ms = {1000 / total:,.0f} images/s")

    naive = naive_loop(args.naive, args.size)
    print(f"naive loop (new scene + OffscreenRenderer per image, 1 process): {naive:,.1f} images/s")
    print(f"ratio steady end-to-end / naive: {steady / naive:,.1f}x ({steady / workers / naive:,.1f}x per process)")
    print(f"target 400 images/s on 2 cores: {'met' if steady >= 400 else 'NOT met'} ({steady:,.0f} steady)")


if __name__ == "__main__":
    main()
