"""manifest.json and the README.md dataset card of a shard set; reading, describing and verifying them."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

from latentds.errors import ShardError
from latentds.render.factors import CUBOID, FACTORS, PRESETS
from latentds.render.spec import RenderSpec

MANIFEST = "manifest.json"
CARD = "README.md"
FORMAT_VERSION = 1

MEMBERS = {
    "png": "8-bit RGB image",
    "json": "every factor and setting of the sample (enough to re-render it exactly)",
    "depth.npy": "float32 depth in scene units along the camera axis at pixel centres, 0 where no cuboid is",
    "mask.png": "8-bit cuboid ids at pixel centres: 0 background, k+1 where cuboid k is the nearest surface",
}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary name, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def render_command(spec: RenderSpec) -> str:
    """The CLI command that makes exactly this shard set."""
    parts = ["latentds render", f"--{spec.preset}", f"--n {spec.n}", f"--size {spec.size}", f"--seed {spec.seed}",
             f"--shard-size {spec.shard_size}"]
    if spec.sequence:
        parts.append(f"--sequence {spec.sequence} --steps {spec.steps}")
    if spec.extras:
        parts.append(f"--with {','.join(spec.extras)}")
    if spec.name != spec.preset:
        parts.append(f"--name {spec.name}")
    return " ".join(parts)


def build_manifest(spec: RenderSpec, records: list[dict]) -> dict:
    varies = set(PRESETS[spec.preset].varies)
    if spec.sequence:
        varies.add(spec.sequence)
    return {
        "format": "latentds-shards",
        "format_version": FORMAT_VERSION,
        "generator": "latentds.render",
        "generator_version": spec.params()["generator_version"],
        "name": spec.name,
        "preset": spec.preset,
        "description": PRESETS[spec.preset].description,
        "params": spec.params(),
        "command": render_command(spec),
        "seed": spec.seed,
        "image_size": spec.size,
        "count": spec.n,
        "members": {m: MEMBERS[m] for m in ["png", "json"] + [f"{e}.{'npy' if e == 'depth' else 'png'}"
                                                             for e in spec.extras]},
        "camera": dict(PRESETS[spec.preset].camera),
        "cuboid": dict(CUBOID),
        "shards": records,
        "factors": [f.as_json(f.name in varies) for f in FACTORS],
    }


def write_manifest(out: Path, manifest: dict) -> None:
    write_text_atomic(out / CARD, dataset_card(manifest))
    # The manifest goes last: its presence is what marks the shard set complete.
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of the shard set in directory ``path``; ShardError if there is none or it is unreadable."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise ShardError(f"{path} holds no {MANIFEST}: not a finished latentds shard set "
                         "(if a render into it was interrupted, run the same command again to finish it)")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ShardError(f"cannot read {file}: {e}") from None
    if manifest.get("format") != "latentds-shards":
        raise ShardError(f"{file} is not a latentds shard manifest (no \"format\": \"latentds-shards\")")
    return manifest


def count_samples(tar_path: Path) -> int:
    """Number of distinct sample keys in a tar (the part of each member name before its first dot)."""
    with tarfile.open(tar_path) as tar:
        return len({m.name.split(".", 1)[0] for m in tar.getmembers() if m.isfile()})


def verify_shards(path: str | os.PathLike, progress=None) -> list[str]:
    """Check every shard of a shard set against its manifest: presence, size, sha256 and sample count.

    Returns one line per problem; an empty list means the set is intact. ``progress`` wraps the shard loop
    (e.g. ``tqdm``).
    """
    out = Path(path)
    manifest = read_manifest(out)
    problems = []
    shards = manifest["shards"]
    for rec in (progress(shards) if progress else shards):
        file = out / rec["name"]
        if not file.is_file():
            problems.append(f"{rec['name']}: missing")
            continue
        if file.stat().st_size != rec["bytes"]:
            problems.append(f"{rec['name']}: {file.stat().st_size} bytes, manifest says {rec['bytes']}")
            continue
        if file_sha256(file) != rec["sha256"]:
            problems.append(f"{rec['name']}: sha256 differs from the manifest")
            continue
        try:
            count = count_samples(file)
        except tarfile.TarError as e:
            problems.append(f"{rec['name']}: unreadable tar ({e})")
            continue
        if count != rec["count"]:
            problems.append(f"{rec['name']}: {count} samples, manifest says {rec['count']}")
    total = sum(r["count"] for r in shards)
    if total != manifest["count"]:
        problems.append(f"manifest: shards hold {total} samples, but count is {manifest['count']}")
    return problems


def _brace_pattern(manifest: dict) -> str:
    n = len(manifest["shards"])
    if n == 1:
        return manifest["shards"][0]["name"]
    return f"{manifest['name']}-{{000000..{n - 1:06d}}}.tar"


def describe(manifest: dict) -> str:
    """A few human-readable lines: what the shard set is, and its varying factors."""
    size_mb = sum(r["bytes"] for r in manifest["shards"]) / 1e6
    lines = [
        f"{manifest['name']}: {manifest['count']:,} images of {manifest['image_size']}x{manifest['image_size']} px, "
        f"preset {manifest['preset']!r}, seed {manifest['seed']}",
        f"  {len(manifest['shards'])} shards ({_brace_pattern(manifest)}), {size_mb:,.1f} MB; "
        f"members: {', '.join(manifest['members'])}",
        f"  made by: {manifest['command']}  (latentds {manifest['generator_version']})",
    ]
    seq = manifest["params"].get("sequence")
    if seq:
        lines.append(f"  sequences: groups of {manifest['params']['steps']} where only {seq} moves")
    lines.append("  varying factors:")
    for f in manifest["factors"]:
        if f["varies"]:
            span = "[{:g}, {:g}] {}".format(*f["range"], f["unit"])
            lines.append(f"    {f['name']:<16} {f['type']:<5} {span:<16} {f['description']}")
    return "\n".join(lines)


def dataset_card(manifest: dict) -> str:
    """The README.md written beside the shards."""
    rows = "\n".join(
        f"| `{f['name']}` | {f['type']} | [{f['range'][0]:g}, {f['range'][1]:g}] {f['unit']} | "
        f"{'yes' if f['varies'] else 'fixed'} | `{f['path']}` | {f['description']} |"
        for f in manifest["factors"])
    members = "\n".join(f"- `KEY.{m}`: {d}" for m, d in manifest["members"].items())
    pattern = _brace_pattern(manifest)
    return f"""# {manifest['name']}: articulated cuboid chains

{manifest['count']:,} images of {manifest['image_size']}x{manifest['image_size']} pixels rendered with latentds
{manifest['generator_version']} (pyrender, headless OpenGL). Preset `{manifest['preset']}`: {manifest['description']}.

Made by:

    {manifest['command']}

The same command gives the same bytes (sample i depends only on the seed and i); `latentds info --verify DIR`
checks every shard against `manifest.json`.

## Layout

WebDataset shards `{pattern}`, one sample per key (the zero-padded global index), members:

{members}

`manifest.json` lists every shard with its sample count, byte size and sha256, the parameters of the render, and
the factor table below.

## Factors

A chain of equal cuboids ({', '.join(f'{k} {v:g}' for k, v in manifest['cuboid'].items())}) joined end to end. Joint j turns cuboid j+1 relative to cuboid j:
Phi about the parent's vertical axis, Theta about its lateral axis, Lambda (twist) about the child's long axis.
Angles are in degrees. Joint 0 is at the world origin; the camera is fixed: {json.dumps(manifest['camera'])}.

| factor | type | range | varies | JSON path | meaning |
|---|---|---|---|---|---|
{rows}

## Loading

With webdataset alone:

```python
import webdataset as wds
ds = wds.WebDataset("DIR/{pattern}", shardshuffle=False).decode("rgb").to_tuple("png", "json")
for image, labels in ds:  # image: float32 HxWx3 in [0, 1]; labels: dict
    ...
```

With the standard library alone: every shard is a plain tar (`tarfile.open("DIR/{manifest['shards'][0]['name']}")`).
"""
