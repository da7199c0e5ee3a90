"""manifest.json of a shard set: write, read, describe, verify."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

from latentds.errors import ShardError

MANIFEST = "manifest.json"
CARD = "README.md"
FORMAT = "latentds-shards"
FORMAT_VERSION = 1


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


def write_manifest(out: Path, manifest: dict, card: str) -> None:
    write_text_atomic(out / CARD, card)
    # The manifest goes last: its presence is what marks the shard set complete.
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of the shard set in directory ``path``; ShardError if there is none or it is unreadable."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise ShardError(f"{path} holds no {MANIFEST}: not a finished latentds shard set "
                         "(if a render or pack into it was interrupted, run the same command again to finish it)")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ShardError(f"cannot read {file}: {e}") from None
    if manifest.get("format") != FORMAT:
        raise ShardError(f"{file} is not a latentds shard manifest (no \"format\": \"{FORMAT}\")")
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


def brace_pattern(manifest: dict) -> str:
    """The shards as one webdataset brace pattern, e.g. ``phi-{000000..000009}.tar``."""
    n = len(manifest["shards"])
    if n == 1:
        return manifest["shards"][0]["name"]
    return f"{manifest['name']}-{{000000..{n - 1:06d}}}.tar"


def describe(manifest: dict) -> str:
    """A few human-readable lines: what the shard set is, how it was made, what its labels are."""
    size_mb = sum(r["bytes"] for r in manifest["shards"]) / 1e6
    size = manifest.get("image_size")
    lines = [
        f"{manifest['name']}: {manifest['count']:,} images" + (f" of {size}x{size} px" if size else "")
        + f" ({manifest['summary']})",
        f"  {len(manifest['shards'])} shards ({brace_pattern(manifest)}), {size_mb:,.1f} MB; "
        f"members: {', '.join(manifest['members'])}",
        f"  made by: {manifest['command']}  (latentds {manifest['generator_version']})",
    ]
    seq = manifest["params"].get("sequence")
    if seq:
        lines.append(f"  sequences: groups of {manifest['params']['steps']} where only {seq} moves")
    if "factors" in manifest:
        lines.append("  varying factors:")
        for f in manifest["factors"]:
            if f["varies"]:
                span = "[{:g}, {:g}] {}".format(*f["range"], f["unit"])
                lines.append(f"    {f['name']:<16} {f['type']:<5} {span:<16} {f['description']}")
    if "labels" in manifest:
        lines.append(f"  labels: {', '.join(manifest['labels'])}")
    return "\n".join(lines)
