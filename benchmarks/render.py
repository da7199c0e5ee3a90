"""Rendering throughput: `latentds render --varied` against the raw-GL ceiling, measured in the same run.

    python benchmarks/render.py [--n 3000] [--size 64] [--with depth,mask] [--workers N] [--rounds 3]
    python benchmarks/render.py --matrix              # 64 px, 128 px, and 64 px --with depth,mask
    python benchmarks/render.py --check-bytes [--n 6000]

Throughput (each figure from fresh processes; the rounds interleave ceiling and latentds so that a machine shared
with other work slows both alike; the best round of each is printed, and every ratio is of figures from this run):
- **ceiling**: a raw OpenGL loop through the same GL bindings as latentds' direct draw path
  (``latentds.render.direct_draw.GLCalls``): 4 lit boxes posed like the samples' chains, per-frame uniforms, 4x
  MSAA resolved by a blit, read back and PNG-encoded; ``--with depth,mask`` adds what latentds does for them (a
  single-sampled pass read back with its depth, a mask PNG and a depth NPY). One process, and one per core at once.
- **replay**: latentds' own GL command stream for 256 samples (pyrender's shaders, all the lights), recorded once
  and re-issued with no Python but the calls, + PNG: the ceiling of latentds' actual GL work;
- **latentds per process**: one shard written by one process (labels -> pose -> draw -> PNG + JSON -> tar -> sha256),
  after warm-up, for the direct path and for ``LATENTDS_RENDER_PATH=pyrender``;
- **latentds on all cores**: one such process per core at once, and ``render_shards`` on every core (4n images,
  pool start-up included);
- where one process spends its time per image (CPU time, each stage in a loop of its own).

``--check-bytes``: renders ``--varied --n N --size 64 --shard-size 500`` with 1 worker, with all workers, killed with
SIGKILL part-way and resumed, and with ``LATENTDS_RENDER_PATH=pyrender`` (each in fresh processes with a different
PYTHONHASHSEED), and checks that every file of every set is byte-identical.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
GL_TRIANGLES = 0x0004


# --- the raw-GL ceiling (run in a fresh process: `render.py --task ceiling`) -------------------------------------

_VS = """#version 330 core
layout(location = 0) in vec3 position; layout(location = 1) in vec3 normal;
uniform mat4 M; uniform mat4 V; uniform mat4 P; out vec3 n;
void main() { gl_Position = P * V * M * vec4(position, 1.0); n = mat3(M) * normal; }"""
_FS = """#version 330 core
in vec3 n; uniform vec4 color; uniform vec3 light_dir; uniform vec3 light_color; uniform vec3 ambient;
out vec4 frag_color;
void main() { float d = max(dot(normalize(n), -light_dir), 0.0);
              frag_color = vec4(pow(color.rgb * (ambient + d * light_color), vec3(1.0 / 2.2)), 1.0); }"""
_FLAT_FS = """#version 330 core
in vec3 n; uniform vec4 color; out vec4 frag_color; void main() { frag_color = color; }"""


def ceiling(n: int, size: int, extras: bool) -> dict:
    """images/s of the raw loop in this process (which must not have made a GL context yet)."""
    from latentds.render import gl as latentds_gl

    latentds_gl.activate()
    import numpy as np
    import pyrender
    import trimesh
    from OpenGL import GL
    from OpenGL.GL import shaders

    from latentds.render import direct_draw as D
    from latentds.render.factors import CUBOID, sample_labels
    from latentds.render.scene import frame_of
    from latentds.shardsets.encoders import encode_npy, encode_png

    context = pyrender.OffscreenRenderer(size, size)  # only for its EGL context
    gl = D.GLCalls()

    def program(fs):
        return shaders.compileProgram(shaders.compileShader(_VS, GL.GL_VERTEX_SHADER),
                                      shaders.compileShader(fs, GL.GL_FRAGMENT_SHADER))

    lit, flat = program(_FS), program(_FLAT_FS)
    box = trimesh.creation.box(extents=[CUBOID["length"], CUBOID["height"], CUBOID["width"]])
    data = np.hstack([box.vertices[box.faces].reshape(-1, 3), np.repeat(box.face_normals, 3, axis=0)])
    data = np.ascontiguousarray(data, dtype=np.float32)
    vao = GL.glGenVertexArrays(1)
    GL.glBindVertexArray(vao)
    GL.glBindBuffer(GL.GL_ARRAY_BUFFER, GL.glGenBuffers(1))
    GL.glBufferData(GL.GL_ARRAY_BUFFER, data.nbytes, data, GL.GL_STATIC_DRAW)
    for index in (0, 1):
        GL.glVertexAttribPointer(index, 3, GL.GL_FLOAT, GL.GL_FALSE, 24, ctypes.c_void_p(12 * index))
        GL.glEnableVertexAttribArray(index)
    GL.glBindVertexArray(0)

    def framebuffer(samples):
        colour, depth = GL.glGenRenderbuffers(2)
        for buffer, fmt in ((colour, GL.GL_RGBA), (depth, GL.GL_DEPTH_COMPONENT24)):
            GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, buffer)
            if samples:
                GL.glRenderbufferStorageMultisample(GL.GL_RENDERBUFFER, samples, fmt, size, size)
            else:
                GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, fmt, size, size)
        fb = GL.glGenFramebuffers(1)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, fb)
        GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_RENDERBUFFER, colour)
        GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT, GL.GL_RENDERBUFFER, depth)
        return fb

    ms, plain = framebuffer(4), framebuffer(0)
    names = ("M", "V", "P", "color", "light_dir", "light_color", "ambient")
    loc = {name: gl.glGetUniformLocation(lit, name.encode()) for name in names}
    flat_loc = {name: gl.glGetUniformLocation(flat, name.encode()) for name in ("M", "V", "P", "color")}

    # Per-frame inputs, prepared before timing: the chains and suns of real samples, always 4 boxes.
    projection = pyrender.PerspectiveCamera(yfov=np.radians(45.0), znear=0.1, zfar=100.0)
    projection = projection.get_projection_matrix(size, size)
    inputs = []
    for i in range(256):
        f = frame_of(sample_labels("varied", 0, i, size))
        poses, colours = (f.cuboid_poses * 4)[:4], (f.colors * 4)[:4]
        parts = [np.linalg.inv(f.camera_pose).ravel(), projection.ravel(), -f.sun.pose[:3, 2], f.sun.color, [0.08] * 3]
        parts += [np.concatenate([pose.ravel(), [*colour, 1.0]]) for pose, colour in zip(poses, colours)]
        inputs.append(np.concatenate(parts).astype(np.float32))
    rgb = np.empty((size, size, 3), np.uint8)
    depth = np.empty((size, size), np.float32)

    def begin(multisample):
        gl.glBindFramebuffer(D.GL_DRAW_FRAMEBUFFER, ms)
        gl.glViewport(0, 0, size, size)
        gl.glEnable(D.GL_DEPTH_TEST)
        gl.glEnable(D.GL_CULL_FACE)
        (gl.glEnable if multisample else gl.glDisable)(D.GL_MULTISAMPLE)
        gl.glClearColor(0.0, 0.0, 0.0, 1.0)
        gl.glClear(D.GL_COLOR_BUFFER_BIT | D.GL_DEPTH_BUFFER_BIT)

    def resolve(with_depth):
        gl.glBindFramebuffer(D.GL_READ_FRAMEBUFFER, ms)
        gl.glBindFramebuffer(D.GL_DRAW_FRAMEBUFFER, plain)
        gl.glBlitFramebuffer(0, 0, size, size, 0, 0, size, size, D.GL_COLOR_BUFFER_BIT, D.GL_LINEAR)
        if with_depth:
            gl.glBlitFramebuffer(0, 0, size, size, 0, 0, size, size, D.GL_DEPTH_BUFFER_BIT, D.GL_NEAREST)
        gl.glBindFramebuffer(D.GL_READ_FRAMEBUFFER, plain)
        gl.glPixelStorei(D.GL_PACK_ALIGNMENT, 1)
        gl.glReadPixels(0, 0, size, size, D.GL_RGB, D.GL_UNSIGNED_BYTE, rgb.ctypes.data)

    def frame(values):
        a = values.ctypes.data
        begin(True)
        gl.glUseProgram(lit)
        gl.glUniformMatrix4fv(loc["V"], 1, 1, a)
        gl.glUniformMatrix4fv(loc["P"], 1, 1, a + 64)
        gl.glUniform3fv(loc["light_dir"], 1, a + 128)
        gl.glUniform3fv(loc["light_color"], 1, a + 140)
        gl.glUniform3fv(loc["ambient"], 1, a + 152)
        gl.glBindVertexArray(vao)
        for k in range(4):
            gl.glUniformMatrix4fv(loc["M"], 1, 1, a + 164 + 80 * k)
            gl.glUniform4fv(loc["color"], 1, a + 228 + 80 * k)
            gl.glDrawArraysInstanced(GL_TRIANGLES, 0, 36, 1)
        resolve(False)
        out = [encode_png(rgb[::-1].copy())]
        if extras:
            begin(False)
            gl.glUseProgram(flat)
            gl.glUniformMatrix4fv(flat_loc["V"], 1, 1, a)
            gl.glUniformMatrix4fv(flat_loc["P"], 1, 1, a + 64)
            for k in range(4):
                gl.glUniformMatrix4fv(flat_loc["M"], 1, 1, a + 164 + 80 * k)
                gl.glUniform4fv(flat_loc["color"], 1, a + 228 + 80 * k)
                gl.glDrawArraysInstanced(GL_TRIANGLES, 0, 36, 1)
            resolve(True)
            gl.glReadPixels(0, 0, size, size, D.GL_DEPTH_COMPONENT, D.GL_FLOAT, depth.ctypes.data)
            out += [encode_png(rgb[::-1, :, 0].copy()), encode_npy(depth[::-1].copy())]
        return out

    for i in range(100):
        frame(inputs[i % 256])
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        frame(inputs[i % 256])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    context.delete()
    return {"images_per_s": n / wall, "cpu_us": cpu / n * 1e6}


def replay_ceiling(n: int, size: int, extras: bool) -> dict:
    """images/s of latentds' own GL command stream, replayed: the direct path's calls for 256 samples are recorded
    (with a copy of each frame's uniform values), then the timed loop only re-issues them and PNG-encodes what it
    reads back. The same GL work as latentds, without any of its Python: the ceiling of this exact workload."""
    import numpy as np

    from latentds.render import direct_draw as D
    from latentds.render.factors import CUBOID, sample_labels
    from latentds.render.renderer import CuboidRenderer
    from latentds.render.scene import frame_of
    from latentds.shardsets.encoders import encode_npy, encode_png

    renderer = CuboidRenderer(size, CUBOID, path="direct")
    d = renderer._direct
    real = {name: getattr(d.calls, name) for name in D.GLCalls.SIGNATURES}
    calls: list = []
    recording = {}
    for name, fn in real.items():
        recording[id(fn)] = lambda *args, _fn=fn: (calls.append((_fn, args)), _fn(*args))[1]
        setattr(d.calls, name, recording[id(fn)])
    # the uniform calls DirectDraw prepared once hold the functions themselves: record those too
    saved = d.frame_calls, d.sun_block, d.spot_blocks, d.point_blocks

    def recorded_calls(block):
        return [(recording[id(fn)], location, address) for fn, location, address in block]

    d.frame_calls = recorded_calls(d.frame_calls)
    d.sun_block = (d.sun_block[0], recorded_calls(d.sun_block[1]))
    d.spot_blocks = [(offset, recorded_calls(block)) for offset, block in d.spot_blocks]
    d.point_blocks = [(offset, recorded_calls(block)) for offset, block in d.point_blocks]
    frames = []
    stage_from, stage_to = d.f32.ctypes.data, d.f32.ctypes.data + d.f32.nbytes
    expected = []
    for i in range(256):
        calls.clear()
        expected.append(d.render(frame_of(sample_labels("varied", 0, i, size)), size, depth=extras, mask=extras)["rgb"])
        values = d.f32.copy()  # this frame's uniforms; the recorded addresses are moved into the copy
        outputs, recorded = [], []
        for fn, args in calls:
            if fn is real["glReadPixels"]:
                buffer = np.empty((size, size, 3) if args[4] == D.GL_RGB else (size, size),
                                  np.uint8 if args[4] == D.GL_RGB else np.float32)
                outputs.append(buffer)
                args = (*args[:6], buffer.ctypes.data)
            else:
                args = tuple(values.ctypes.data + (a - stage_from) if isinstance(a, int) and stage_from <= a < stage_to
                             else a for a in args)
            recorded.append((fn, args))
        frames.append((values, recorded, outputs))
    for name, fn in real.items():
        setattr(d.calls, name, fn)
    d.frame_calls, d.sun_block, d.spot_blocks, d.point_blocks = saved

    def frame(recorded, outputs):
        for fn, args in recorded:
            fn(*args)
        encoded = [encode_png(outputs[0][::-1].copy())]
        if extras:  # depth and the segmentation colours, as read back
            encoded += [encode_npy(outputs[1][::-1].copy()), encode_png(outputs[2][::-1, :, 0].copy())]
        return encoded

    for i in range(256):  # warm-up, and proof that the replay draws what latentds drew
        frame(*frames[i][1:])
        assert np.array_equal(frames[i][2][0][::-1], expected[i]), "the replay does not reproduce the frame"
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        frame(*frames[i % 256][1:])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"images_per_s": n / wall, "cpu_us": cpu / n * 1e6}


# --- latentds in one process (`render.py --task process`) ---------------------------------------------------------

def one_process(n: int, size: int, extras: tuple[str, ...]) -> dict:
    """images/s of one shard of n images written by this process, after warm-up (LATENTDS_RENDER_PATH applies)."""
    from latentds.render.factors import CUBOID, sample_labels
    from latentds.render.renderer import process_renderer
    from latentds.render.shard_writer import write_shard
    from latentds.render.spec import RenderSpec

    renderer = process_renderer(size, CUBOID)
    for i in range(200):
        renderer.render(sample_labels("varied", 1, i, size), depth="depth" in extras, mask="mask" in extras)
    out = Path(tempfile.mkdtemp(prefix="latentds-bench-"))
    try:
        spec = RenderSpec("varied", n=n, size=size, shard_size=n, extras=extras)
        wall, cpu = time.perf_counter(), time.process_time()
        write_shard(spec, 0, out, renderer=renderer)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        shutil.rmtree(out)
    return {"images_per_s": n / wall, "cpu_us": cpu / n * 1e6, "path": renderer.path}


def stages(n: int, size: int, extras: tuple[str, ...]) -> dict:
    """CPU µs per image of each stage, each in a loop of its own, in this process (one persistent renderer), in
    the shard writer's batches."""
    from latentds.render.factors import CUBOID, sample_labels
    from latentds.render.renderer import process_renderer
    from latentds.render.shard_writer import BATCH
    from latentds.render.staging import stage
    from latentds.shardsets.encoders import encode_json, encode_npy, encode_png

    renderer = process_renderer(size, CUBOID)
    depth, mask = "depth" in extras, "mask" in extras
    renderer.render_batch([sample_labels("varied", 1, i, size) for i in range(200)], depth=depth, mask=mask)
    clock = time.process_time
    t0 = clock()
    for start in range(0, n, BATCH):  # a batch at a time, as the shard writer holds them
        labels = [sample_labels("varied", 0, i, size) for i in range(start, min(n, start + BATCH))]
    labelling = clock() - t0
    labels = [sample_labels("varied", 0, i, size) for i in range(n)]
    batches = [labels[i:i + BATCH] for i in range(0, n, BATCH)]
    t1 = clock()
    for batch in batches:
        stage(renderer._direct, batch, size)
    t2 = clock()
    images = [im for batch in batches for im in renderer.render_batch(batch, depth=depth, mask=mask)]
    t3 = clock()
    for im in images:
        encode_png(im["rgb"])
        if mask:
            encode_png(im["mask"])
        if depth:
            encode_npy(im["depth"])
    t4 = clock()
    for lab in labels:
        encode_json(lab)
    t5 = clock()
    us = 1e6 / n
    # render_batch() stages the batch itself: "draw" is its time less the staging's
    return {"labels": labelling * us, "values": (t2 - t1) * us, "draw": (t3 - t2 - (t2 - t1)) * us,
            "encode": (t4 - t3) * us, "json": (t5 - t4) * us}


# --- the driver ----------------------------------------------------------------------------------------------------

def _task(name: str, n: int, size: int, extras: tuple[str, ...], env: dict | None = None) -> subprocess.Popen:
    command = [sys.executable, str(HERE), "--task", name, "--n", str(n), "--size", str(size),
               "--with", ",".join(extras)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=dict(os.environ, **(env or {})))


def _result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"benchmark task failed ({proc.args})")
    return json.loads(out.strip().splitlines()[-1])


def _run(name, n, size, extras, env=None) -> dict:
    return _result(_task(name, n, size, extras, env))


def _all_cores(name, n, size, extras, workers, env=None) -> float:
    """Sum of images/s of ``workers`` simultaneous processes."""
    procs = [_task(name, n, size, extras, env) for _ in range(workers)]
    return sum(_result(p)["images_per_s"] for p in procs)


def _render_shards(n: int, size: int, extras: tuple[str, ...], workers: int) -> float:
    """images/s of ``render_shards`` from the call to the verified set: pool start-up included."""
    from latentds.render import RenderSpec, render_shards, verify_shards

    out = tempfile.mkdtemp(prefix="latentds-bench-")
    try:
        spec = RenderSpec("varied", n=n, size=size, shard_size=500, extras=extras)
        t = time.perf_counter()
        render_shards(spec, out, workers=workers, progress=False)
        wall = time.perf_counter() - t
        assert not verify_shards(out)
        return n / wall
    finally:
        shutil.rmtree(out)


def measure(n: int, size: int, extras: tuple[str, ...], workers: int, rounds: int) -> dict:
    """The figures for one configuration; each round runs every kind once, one after the other."""
    kinds = {"ceiling": ("ceiling", n, None), "replay": ("replay", n, None),
             "direct": ("process", n, {"LATENTDS_RENDER_PATH": "direct"}),
             "pyrender": ("process", max(n // 4, 300), {"LATENTDS_RENDER_PATH": "pyrender"})}
    runs = {k: [] for k in kinds}
    for _ in range(rounds):
        for kind, (task, count, env) in kinds.items():
            runs[kind].append(_run(task, count, size, extras, env))
    best = {k: max(v, key=lambda r: r["images_per_s"]) for k, v in runs.items()}
    spread = {k: (min(r["images_per_s"] for r in v), max(r["images_per_s"] for r in v)) for k, v in runs.items()}
    cores = {"ceiling": [], "direct": [], "render_shards": []}
    for _ in range(max(1, rounds - 1)):
        cores["ceiling"].append(_all_cores("ceiling", n, size, extras, workers))
        cores["direct"].append(_all_cores("process", n, size, extras, workers, {"LATENTDS_RENDER_PATH": "direct"}))
        cores["render_shards"].append(_render_shards(4 * n, size, extras, workers))
    return {"best": best, "spread": spread, "cores": {k: max(v) for k, v in cores.items()}, "rounds": rounds, "n": n,
            "stages": _run("stages", min(n, 2000), size, extras)}


def report(size: int, extras: tuple[str, ...], workers: int, figures: dict) -> None:
    """Print one configuration: images/s (best round) and CPU µs per image; ratios of both to the ceilings."""
    best, cores, spread = figures["best"], figures["cores"], figures["spread"]
    what = f"{size} px" + (f" --with {','.join(extras)}" if extras else "")
    print(f"\n== {what}: best of {figures['rounds']} rounds [slowest-fastest]; ratios: images/s (CPU time) ==")

    def ratio(kind, to):
        return (f"{best[kind]['images_per_s'] / best[to]['images_per_s']:.2f} "
                f"({best[to]['cpu_us'] / best[kind]['cpu_us']:.2f})")

    rows = [("raw-GL ceiling: 4 lit boxes + PNG", "ceiling"), ("latentds' GL stream replayed + PNG", "replay"),
            ("latentds, direct path (one shard)", "direct"), ("latentds, LATENTDS_RENDER_PATH=pyrender", "pyrender")]
    for label, kind in rows:
        r, (lo, hi) = best[kind], spread[kind]
        tail = "" if kind == "ceiling" else f"  {ratio(kind, 'ceiling')} of the ceiling"
        if kind in ("direct", "pyrender"):
            tail += f", {ratio(kind, 'replay')} of the replay"
        print(f"1 process, {label:41s} {r['images_per_s']:6,.0f} images/s [{lo:,.0f}-{hi:,.0f}], "
              f"{r['cpu_us']:5,.0f} µs CPU/image{tail}")
    print(f"{workers} processes, {'raw-GL ceiling':40s} {cores['ceiling']:6,.0f} images/s")
    print(f"{workers} processes, {'latentds, direct path (one shard each)':40s} {cores['direct']:6,.0f} images/s  "
          f"{cores['direct'] / cores['ceiling']:.2f} of the ceiling")
    print(f"{workers} workers, {'render_shards, ' + format(4 * figures['n'], ',') + ' images, start-up incl.':42s}"
          f" {cores['render_shards']:6,.0f} images/s")
    st = figures["stages"]
    print("1 process, CPU µs per image, each stage in a loop of its own: "
          + ", ".join(f"{k} {v:.0f}" for k, v in st.items()) + f"; sum {sum(st.values()):.0f}")
    print(f"direct / pyrender path, 1 process: {ratio('direct', 'pyrender')}")


# --- same bytes everywhere -----------------------------------------------------------------------------------------

def _tree(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if not p.name.startswith(".")}


def _cli(out: Path, n: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "latentds.cli", "render", "--varied", "--n", str(n), "--size", "64",
            "--shard-size", "500", "--workers", str(workers), "--out", str(out), "--quiet"]


def check_bytes(n: int, workers: int) -> bool:
    """Render the same set four ways in fresh processes and compare every file's bytes."""
    root = Path(tempfile.mkdtemp(prefix="latentds-bytes-"))
    ways = {"1 worker": (1, {"PYTHONHASHSEED": "1"}),
            f"{workers} workers": (workers, {"PYTHONHASHSEED": "2"}),
            f"{workers} workers, killed and resumed": (workers, {"PYTHONHASHSEED": "3"}),
            f"{workers} workers, LATENTDS_RENDER_PATH=pyrender": (workers, {"PYTHONHASHSEED": "4",
                                                                           "LATENTDS_RENDER_PATH": "pyrender"})}
    trees = {}
    try:
        for k, (way, (w, env)) in enumerate(ways.items()):
            out = root / f"set{k}"
            env = dict(os.environ, **env)
            t = time.perf_counter()
            if "killed" in way:
                proc = subprocess.Popen(_cli(out, n, w), env=env, start_new_session=True)
                while proc.poll() is None and len(list(out.glob("*.tar"))) < max(2, n // 1500):
                    time.sleep(0.05)
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)  # this process group is ours: the CLI and its workers
                    proc.wait()
                else:
                    print(f"  (the render finished before it could be killed: n={n} is too small)")
                done = len(list(out.glob("*.tar")))
                subprocess.run(_cli(out, n, w), env=env, check=True)
                way += f" (killed after {done} shards)"
            else:
                subprocess.run(_cli(out, n, w), env=env, check=True)
            trees[way] = _tree(out)
            print(f"  {way}: {len(trees[way])} files, {time.perf_counter() - t:.1f} s")
        reference_way, reference = next(iter(trees.items()))
        ok = True
        for way, tree in trees.items():
            differ = sorted(name for name in reference.keys() | tree.keys() if reference.get(name) != tree.get(name))
            if differ:
                ok = False
                print(f"  DIFFERENT from '{reference_way}': {way}: {differ[:8]}")
        print(f"same bytes in all {len(trees)} sets ({len(reference)} files each)" if ok else "bytes differ")
        return ok
    finally:
        shutil.rmtree(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="images per timed run (default 3000; 6000 with "
                                                            "--check-bytes)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--with", dest="extras", default="", help="depth,mask")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--matrix", action="store_true", help="64 px, 128 px and 64 px --with depth,mask")
    parser.add_argument("--check-bytes", action="store_true")
    parser.add_argument("--task", choices=("ceiling", "replay", "process", "stages"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    extras = tuple(e for e in args.extras.split(",") if e)

    if args.task:
        n = args.n or 3000
        fn = {"ceiling": lambda: ceiling(n, args.size, bool(extras)),
              "replay": lambda: replay_ceiling(n, args.size, bool(extras)),
              "process": lambda: one_process(n, args.size, extras),
              "stages": lambda: stages(n, args.size, extras)}[args.task]
        print(json.dumps(fn()))
        return

    from latentds.render import gl
    from latentds.shardsets.producer import default_workers

    workers = args.workers or default_workers()
    os.environ[gl.CHOSEN_ENV] = gl.headless_platform()  # probe once; every child inherits the choice
    if args.check_bytes:
        sys.exit(0 if check_bytes(args.n or 6000, workers) else 1)
    configs = [(64, ()), (128, ()), (64, ("depth", "mask"))] if args.matrix else [(args.size, extras)]
    for size, ex in configs:
        report(size, ex, workers, measure(args.n or 3000, size, ex, workers, args.rounds))


if __name__ == "__main__":
    main()
