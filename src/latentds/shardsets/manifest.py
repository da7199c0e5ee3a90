"""manifest.json of a shard set: write, read (``read_manifest``, the one reader), describe, verify; and the
"Loading" section every dataset card shares. The manifest's header fields and their building are in
latentds.shardsets.spec."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from pathlib import Path

from latentds.errors import ShardError
from latentds.shardsets.atomic import write_atomic
from latentds.text import markdown_code, markdown_text, plain_latentds_command, terminal_text

MANIFEST = "manifest.json"
CARD = "README.md"
FORMAT = "latentds-shards"
FORMAT_VERSION = 1
PROGRESS = ".latentds-progress.jsonl"  # a producer's record of a set being written (see producer.py)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_manifest(out: Path, manifest: dict, card: str) -> None:
    write_atomic(out / CARD, card)
    # The manifest goes last: its presence is what marks the shard set complete.
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def read_manifest(path: str | os.PathLike, *, strict: bool = True) -> dict | None:
    """The manifest of the shard set in directory ``path`` (the one reader of manifest.json).

    ``strict`` (``latentds info``, producers): a finished latentds set is required; ShardError if there is no
    manifest (saying so when a render or pack there is unfinished), or it is unreadable or damaged (saying how to
    rebuild it). ``strict=False`` (a manifest found beside shards a user names, ``load_shards``): None when there
    is none; any JSON object is accepted as long as its shard records are safe to open (plain file names inside
    the set, whole counts), else ShardError.
    """
    file = Path(path) / MANIFEST
    if not file.is_file():
        if not strict:
            return None
        if not Path(path).exists():
            raise ShardError(f"{path} does not exist: give the directory of a shard set (latentds render or pack "
                             "writes one)")
        unfinished = unfinished_message(path)
        if unfinished:
            raise ShardError(unfinished)
        raise ShardError(f"{path} holds no {MANIFEST}: not a finished latentds shard set "
                         "(if a render or pack into it was interrupted, run the same command again to finish it)")
    manifest = load_manifest_file(file)
    version = manifest.get("format_version")
    if manifest.get("format") == FORMAT and isinstance(version, int) and version > FORMAT_VERSION:
        raise ShardError(f"{file} is format version {version}, newer than this latentds reads ({FORMAT_VERSION}): "
                         "upgrade latentds (pip install -U latentds)")
    if not strict:
        problems = shard_record_problems(manifest.get("shards"))
        if problems:  # names read from a data file are never opened as paths outside the set, or as URLs
            raise ShardError(f"{file} cannot be used: {problems[0]}")
        return manifest
    if manifest.get("format") != FORMAT:
        raise ShardError(f"{file} is not a latentds shard manifest (no \"format\": \"{FORMAT}\")")
    problems = manifest_problems(manifest)
    if problems:
        raise ShardError(damaged_manifest_message(file, "; ".join(problems[:3])))
    return manifest


def load_manifest_file(file: Path) -> dict:
    """The JSON object in ``file``; ShardError naming the file and the fix if it is unreadable or not an object."""
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise ShardError(f"cannot read {file}: {e.strerror}") from None
    except ValueError as e:
        raise ShardError(damaged_manifest_message(file, f"not valid JSON: {e}")) from None
    except RecursionError:  # thousands of nested brackets: malformed, not a crash
        raise ShardError(damaged_manifest_message(file, "malformed: nested too deeply")) from None
    if not isinstance(manifest, dict):
        raise ShardError(damaged_manifest_message(file, f"a JSON {type(manifest).__name__}, not an object"))
    return manifest


def damaged_manifest_message(file: Path, reason: str) -> str:
    command = card_command(file.parent)
    fix = (f"running `{command} --out {file.parent} --overwrite`" if command else
           "running the command that made the set again with --overwrite")
    return (f"{file} is damaged ({reason}); rebuild it by {fix} (the same command gives the same bytes; "
            "files that are not part of the set are never touched)")


def card_command(directory: str | os.PathLike) -> str | None:
    """The command that made the set, as its README.md card records it ("latentds render ..."), or None."""
    try:
        text = (Path(directory) / CARD).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    found = re.search(r"^    (latentds (?:render|pack) [^\n]+)$", text, re.M)
    command = found.group(1).strip() if found else None
    # Read from a file, so shown as advice only when it is a plain latentds command (no `; curl ... | sh`).
    return command if plain_latentds_command(command) else None


# Keys that ``describe`` and ``verify_shards`` read, with their JSON types.
_REQUIRED = {"name": str, "count": int, "shards": list, "params": dict, "members": dict, "command": str,
             "summary": str, "generator_version": str}
_SHARD_KEYS = {"name": str, "count": int, "bytes": int, "sha256": str}


def factor_rows(factors: list[dict]) -> str:
    """A manifest's factor table as a Markdown table (dataset cards)."""
    # Names, paths and descriptions may come from a data file (a packed dataset's attribute names): escaped, so no
    # tag or table break reaches the card; plain ones keep the bytes they always had.
    rows = "\n".join(
        f"| {markdown_code(f['name'])} | {markdown_text(f['type'])} | [{f['range'][0]:g}, {f['range'][1]:g}] "
        f"{markdown_text(f['unit'])} | {'yes' if f['varies'] else 'fixed'} | {markdown_code(f.get('path', f['name']))} "
        f"| {markdown_text(f['description'])} |" for f in factors)
    return "| factor | type | range | varies | JSON path | meaning |\n|---|---|---|---|---|---|\n" + rows


def manifest_problems(manifest: dict) -> list[str]:
    """What is missing or malformed in a latentds manifest (an empty list when it is sound)."""
    problems = [f"no {key!r}" if key not in manifest else f"{key!r} is not a {kind.__name__}"
                for key, kind in _REQUIRED.items() if not isinstance(manifest.get(key), kind)
                or (kind is int and isinstance(manifest.get(key), bool))]
    if isinstance(manifest.get("shards"), list):
        problems += shard_record_problems(manifest["shards"], _SHARD_KEYS)
    factors = manifest.get("factors", [])
    if not isinstance(factors, list) or not all(isinstance(f, dict) and {"name", "type", "range", "unit",
                                                                          "varies", "description"} <= set(f)
                                                 for f in factors):
        problems.append("'factors' is not a list of factor rows")
    labels = manifest.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        problems.append("'labels' is not a list of names")
    return problems


def shard_record_problems(records, keys: dict | None = None) -> list[str]:
    """Problems of a manifest's list of shard records: each must be an object whose "name" is a plain file name
    inside the set (``safe_shard_name``) and whose "count" is a whole number, plus ``keys`` with those types."""
    keys = keys or {"name": str, "count": int}
    if not isinstance(records, list):
        return ["'shards' is not a list"]
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            return [f"shard record {i} is not an object"]
        for key, kind in keys.items():
            value = rec.get(key)
            if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 0)):
                return [f"shard record {i} has no valid {key!r}"]
        if not safe_shard_name(rec["name"]):
            return [f"shard record {i} names {rec['name']!r}, which is not a plain file name inside the set"]
    seen = set()
    for i, rec in enumerate(records):  # a shard listed twice would be served twice, and another left out
        if rec["name"] in seen:
            return [f"shard record {i} names {rec['name']!r} again"]
        seen.add(rec["name"])
    return []


def safe_shard_name(name) -> bool:
    """Whether ``name`` (read from a data file, so not trusted) is a plain file name inside the set's directory:
    no directory separator, no "..", no scheme or "pipe:" (a ':' anywhere), no control character."""
    return (isinstance(name, str) and 0 < len(name) <= 255 and name not in (".", "..")
            and not re.search(r"[/\\:\x00-\x1f]", name))


def unfinished_message(directory: str | os.PathLike) -> str | None:
    """If ``directory`` holds a render or pack that has not finished (a progress file, no manifest): one line
    saying how far it got and how to finish it; else None."""
    directory = Path(directory)
    progress = directory / PROGRESS
    if (directory / MANIFEST).is_file() or not progress.is_file():
        return None
    head, done = {}, 0
    try:
        with open(progress, encoding="utf-8") as f:
            lines = f.read().splitlines()
        head = json.loads(lines[0]) if lines else {}
        for line in lines[1:]:
            try:
                done += int(json.loads(line).get("count", 0))
            except (ValueError, TypeError, AttributeError, RecursionError):
                continue  # the last line of a killed run may be cut short
    except (OSError, ValueError, IndexError, RecursionError):
        pass
    head = head if isinstance(head, dict) else {}
    params = head.get("params") if isinstance(head.get("params"), dict) else {}
    total = params.get("n", params.get("count"))
    how_far = f"{done:,} of {total:,} images written" if isinstance(total, int) else f"{done:,} images written"
    command = head.get("command")
    finish = f"`{command}`" if plain_latentds_command(command) else "the command that started it"
    return (f"{directory} holds an unfinished shard set ({how_far}, no {MANIFEST} yet): finish it by running "
            f"{finish} again (it resumes where it stopped); to use only the shards finished so far, name them "
            "yourself (a list or brace pattern of the .tar files)")


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
    if n == 0:
        return "no shards"
    if n == 1:
        return manifest["shards"][0]["name"]
    return f"{manifest['name']}-{{000000..{n - 1:06d}}}.tar"


def loading_section(manifest: dict, latentds_gives: str = "decoded image tensors and labels") -> str:
    """The "Loading" section every dataset card ends with (written once, here): how to read the set with
    latentds, webdataset, Ray Data, Hugging Face ``datasets`` and the standard library. ``latentds_gives``: what
    ``load_shards`` yields for this kind of set, beyond the split across workers and ranks."""
    pattern = brace_pattern(manifest)
    first = manifest["shards"][0]["name"] if manifest["shards"] else pattern
    return f"""## Loading

With latentds ({latentds_gives}; shuffled and split exactly
across DataLoader workers and DDP ranks):

```python
import latentds, torch
ds = latentds.load_shards("DIR", batch_size=64, shuffle=1000)
loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
```

With webdataset alone:

```python
import webdataset as wds
ds = wds.WebDataset("DIR/{pattern}", shardshuffle=False).decode("rgb").to_tuple("png", "json")
for image, labels in ds:  # image: float32 HxWx3 in [0, 1]; labels: dict
    ...
```

With Ray Data (rows: `__key__`, `png` as a uint8 HxWx3 array, `json` as a dict):

```python
import ray
ds = ray.data.read_webdataset("DIR", file_extensions=["tar"])
```

With Hugging Face datasets:

```python
from datasets import load_dataset
ds = load_dataset("webdataset", data_files={{"train": "DIR/*.tar"}}, split="train")
```

With the standard library alone: every shard is a plain tar (`tarfile.open("DIR/{first}")`).
"""


def describe(manifest: dict) -> str:
    """A few human-readable lines: what the shard set is, how it was made, what its labels are. Text from the
    manifest goes to a terminal: its control characters (ANSI/OSC escapes, newlines) are written out."""
    t = terminal_text
    size_mb = sum(r["bytes"] for r in manifest["shards"]) / 1e6
    size = manifest.get("image_size")
    size = size if isinstance(size, int) else (t(size) if size else None)
    lines = [
        f"{t(manifest['name'])}: {manifest['count']:,} images" + (f" of {size}x{size} px" if size else "")
        + f" ({t(manifest['summary'])})",
        f"  {len(manifest['shards'])} shard{'s' if len(manifest['shards']) != 1 else ''} "
        f"({t(brace_pattern(manifest))}), {size_mb:,.1f} MB; "
        f"members: {', '.join(map(t, manifest['members']))}",
        f"  made by: {t(manifest['command'])}  (latentds {t(manifest['generator_version'])})",
    ]
    seq = manifest["params"].get("sequence")
    if seq:
        lines.append(f"  sequences: groups of {t(manifest['params'].get('steps'))} where only {t(seq)} moves")
    if "factors" in manifest:
        lines.append("  varying factors:")
        for f in manifest["factors"]:
            if f["varies"]:
                try:
                    span = "[{:g}, {:g}] {}".format(*f["range"], t(f["unit"]))
                except (TypeError, ValueError, IndexError):
                    span = t(f"{f['range']} {f['unit']}")
                lines.append(f"    {t(f['name']):<16} {t(f['type']):<5} {span:<16} {t(f['description'])}")
    if "labels" in manifest:
        lines.append(f"  labels: {', '.join(map(t, manifest['labels']))}")
    damaged = manifest.get("damaged")
    if isinstance(damaged, list) and damaged:
        lines.append(f"  left out: {len(damaged):,} source images that could not be decoded (listed in {MANIFEST})")
    return "\n".join(lines)
