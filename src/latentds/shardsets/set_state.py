"""What an output directory holds of a shard set: the shards already finished there (from its manifest or progress
file, each checked by size and sha256), and the claim marker a set without one stands for (a finished set's marker
is removed: its manifest records its parameters and shards; a set an earlier version left has none).

    records = finished_records(out, spec)   # shard -> record of the intact finished shards; DamagedSet if the
                                            # manifest or the progress file cannot be read
    marker = set_marker(out, spec)          # the claim marker of a finished set (its manifest says what it holds),
                                            # or of one an earlier version left in progress; None without a set

The progress file's first line holds the parameters (and the command that resumes the run); each further line is
the record of one finished shard (latentds.shardsets.producer appends it once the shard has its final name).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Iterator

from latentds.errors import ShardError
from latentds.shardsets.manifest import CARD, FORMAT, MANIFEST, PROGRESS, file_sha256, read_manifest, safe_shard_name
from latentds.shardsets.marker import Marker, Series

SET_FILES = (MANIFEST, CARD, PROGRESS)  # a set's own files beside its shards; the manifest is removed first


class DamagedSet(Exception):
    """The manifest or progress file of a set cannot be read; the message says which and why."""


def finished_records(out: Path, spec) -> dict[int, dict]:
    """Records of finished shards (from the manifest, else the progress file) whose files are intact, by shard
    number; DamagedSet when the file they come from is damaged."""
    if (out / MANIFEST).is_file():
        try:
            candidates = list(enumerate(read_manifest(out)["shards"]))
        except ShardError as e:
            raise DamagedSet(f"{out / MANIFEST} is damaged ({_reason(e)})") from None
    elif (out / PROGRESS).is_file():
        try:
            candidates = read_progress(out)[1]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DamagedSet(f"{out / PROGRESS} is damaged ({e})") from None
    else:
        return {}
    ranges = spec.shard_ranges()
    kept = {}
    for shard, rec in candidates:
        if not (0 <= shard < len(ranges) and rec.get("name") == spec.shard_name(shard)):
            continue
        file = out / rec["name"]
        damaged = rec.get("damaged", [])  # source items a producer could not read (latentds pack: damaged images)
        if (isinstance(rec.get("count"), int) and isinstance(damaged, list)
                and rec["count"] + len(damaged) == len(ranges[shard]) and file.is_file()
                and file.stat().st_size == rec.get("bytes") and file_sha256(file) == rec.get("sha256")):
            kept[shard] = rec
    return kept


def read_progress(out: Path) -> tuple[dict, list[tuple[int, dict]]]:
    """The parameters and the (shard, record) pairs of the progress file in ``out``; OSError, ValueError,
    KeyError or TypeError when it is damaged (a record cut short by a kill is only left out)."""
    with open(out / PROGRESS, encoding="utf-8") as f:
        params = json.loads(f.readline())["params"]
        records = list(_progress_records(f))
    if not isinstance(params, dict):
        raise ValueError("no parameters")
    return params, records


def _progress_records(lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
    for line in lines:
        try:  # the last line may be cut short by a kill; that shard is simply written again
            rec = json.loads(line)
            shard = rec.pop("shard")
            if isinstance(shard, int) and isinstance(rec.get("name"), str):
                yield shard, rec
        except (ValueError, KeyError, AttributeError, TypeError):
            continue


def params_series(params: dict) -> Series | None:
    """The shard names the parameters (name, shard_size, n or count) imply: NAME-000000.tar up to the shard count."""
    prefix, size = params.get("name"), params.get("shard_size")
    n = params.get("n", params.get("count"))
    if not (isinstance(prefix, str) and prefix and isinstance(n, int) and isinstance(size, int) and size > 0):
        return None
    return Series(f"{prefix}-", 6, ".tar", -(-n // size))


def set_marker(out: Path, spec) -> Marker | None:
    """The claim marker a shard set without one stands for (finished; or in progress or damaged, left by a
    version before the marker), or None when ``out`` holds none: it owns the set's files, the shards its records name and those its parameters
    imply. A damaged set is given ``spec``'s parameters, so that the producer reports the damage itself."""
    params, records = None, []
    if (out / MANIFEST).is_file():
        try:
            manifest = read_manifest(out)
            params, records = manifest["params"], manifest["shards"]
        except ShardError:
            if not _looks_like_ours(out):
                return None  # someone else's manifest.json: the directory is foreign
    elif (out / PROGRESS).is_file():
        try:
            params, pairs = read_progress(out)
            records = [r for _, r in pairs]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    else:
        return None
    params = params if isinstance(params, dict) else spec.params()
    series = params_series(params)
    named = tuple(dict.fromkeys(r["name"] for r in records if isinstance(r, dict) and safe_shard_name(r.get("name"))
                                and not (series and series.holds(r["name"]))))
    return Marker("shards", json.loads(json.dumps(params)), "", SET_FILES + named, (series,) if series else ())


def _reason(error: ShardError) -> str:
    found = re.search(r"is damaged \((.*)\); rebuild", str(error))
    return found.group(1) if found else str(error)


def _looks_like_ours(out: Path) -> bool:
    """Whether a manifest.json that does not read as a latentds manifest was still written by latentds (its
    first bytes say so, or the dataset card beside it is ours)."""
    try:
        with open(out / MANIFEST, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return FORMAT.encode() in head or b'"generator": "latentds.' in head or (out / CARD).is_file() and bool(
        re.search(r"^    latentds (render|pack) ", (out / CARD).read_text(encoding="utf-8", errors="replace"), re.M))
