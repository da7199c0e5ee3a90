"""The claim marker: the one file that says an output directory is latentds' and what latentds wrote there.

    DIR/.latentds-claim.json
    {"kind": "shards", "identity": {...}, "version": "0.1.0",
     "files": ["manifest.json", "README.md", ".latentds-progress.jsonl"],
     "series": [{"prefix": "phi-", "digits": 6, "suffix": ".tar", "count": 12}]}

``kind`` is what the directory holds (shards, train, analyze, study), ``identity`` what must match for a run to
continue there (JSON; a shard set's parameters, a run's model and data sections, a study and scale; null when any
run of the kind may continue), ``version`` the latentds that wrote the marker, ``files`` the names latentds writes
there (a name ending in "/" is a directory of ours) and ``series`` numbered names (a shard set's NAME-000000.tar up
to its shard count, however many: a billion-image set's marker stays a few hundred bytes). A name is owned when it
is listed, in a series, or the hidden ``.NAME.partial`` of one (latentds.shardsets.atomic). The marker is written
atomically with sorted keys and no timestamp, so the same run writes the same bytes. How it is used: see
latentds.shardsets.claim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from latentds.errors import OutputDirectoryError
from latentds.shardsets.atomic import partial_name, write_atomic

MARKER = ".latentds-claim.json"
FORMAT = 1


@dataclass(frozen=True)
class Series:
    """Numbered file names ``PREFIX`` + the index zero-padded to ``digits`` + ``SUFFIX``, for 0 <= index < count."""

    prefix: str
    digits: int
    suffix: str
    count: int

    def name(self, index: int) -> str:
        return f"{self.prefix}{index:0{self.digits}d}{self.suffix}"

    def holds(self, name: str) -> bool:
        if not (name.startswith(self.prefix) and name.endswith(self.suffix)):
            return False
        digits = name[len(self.prefix):len(name) - len(self.suffix)]
        return (len(digits) >= self.digits and digits.isascii() and digits.isdigit()
                and int(digits) < self.count and name == self.name(int(digits)))

    @classmethod
    def of(cls, names, count: int) -> Series | None:
        """The series that ``names`` (a function of the index) follows for indices below ``count``, if it follows
        one with 6 digits (checked at the first, second and last index); None otherwise."""
        if count < 1:
            return None
        first = names(0)
        at = first.rfind("000000")
        if at < 0:
            return None
        series = cls(first[:at], 6, first[at + 6:], count)
        return series if all(names(i) == series.name(i) for i in {0, min(1, count - 1), count - 1}) else None


@dataclass(frozen=True)
class Marker:
    """What a marker records (see the module docstring)."""

    kind: str
    identity: object = None
    version: str = ""
    files: tuple[str, ...] = ()
    series: tuple[Series, ...] = field(default=())

    def owns(self, name: str) -> bool:
        """Whether ``name`` (an entry of the directory) is one latentds wrote for this claim."""
        if name in (MARKER, partial_name(MARKER).name) or self._lists(name):
            return True
        return (name.startswith(".") and name.endswith(".partial") and len(name) > len("..partial")
                and self._lists(name[1:-len(".partial")]))

    def _lists(self, name: str) -> bool:
        return name in self.files or f"{name}/" in self.files or any(s.holds(name) for s in self.series)

    def with_files(self, names) -> Marker:
        new = [n for n in dict.fromkeys(names) if n not in self.files]
        return Marker(self.kind, self.identity, self.version, self.files + tuple(new), self.series) if new else self

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "kind": self.kind, "identity": self.identity, "version": self.version,
                           "files": list(self.files), "series": [vars(s) for s in self.series]},
                          sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Marker:
        """The marker in ``text``; ValueError (naming what is wrong) if it is not one."""
        raw = json.loads(text)
        if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
            raise ValueError("no kind")
        files, series = raw.get("files", []), raw.get("series", [])
        if not (isinstance(files, list) and all(isinstance(f, str) and f for f in files)):
            raise ValueError("files is not a list of names")
        if not (isinstance(series, list) and all(isinstance(s, dict) for s in series)):
            raise ValueError("series is not a list of objects")
        try:
            parsed = tuple(Series(str(s["prefix"]), int(s["digits"]), str(s["suffix"]), int(s["count"]))
                           for s in series)
        except (KeyError, TypeError, ValueError):
            raise ValueError("a series lacks prefix, digits, suffix or count") from None
        if any(not 1 <= s.digits <= 12 for s in parsed):
            raise ValueError("a series has an unusable digit count")
        return cls(raw["kind"], raw.get("identity"), str(raw.get("version", "")), tuple(files), parsed)


def read_marker(directory: Path) -> Marker | None:
    """The marker in ``directory`` (None without one); ValueError when it is damaged."""
    file = Path(directory) / MARKER
    if file.is_symlink():
        raise ValueError("a symbolic link, not the marker latentds writes")
    if not file.is_file():
        return None
    try:
        return Marker.from_json(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(str(e) or type(e).__name__) from None


def write_marker(directory: Path, marker: Marker) -> None:
    """Write ``marker`` into ``directory`` atomically (unchanged bytes are not rewritten); a failed write is an
    OutputDirectoryError, one line."""
    file = Path(directory) / MARKER
    text = marker.to_json()
    try:
        if file.is_file() and not file.is_symlink() and file.read_text(encoding="utf-8") == text:
            return
        partial_name(file).unlink(missing_ok=True)  # never written through: a fresh file, not a planted link
        write_atomic(file, text)
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise OutputDirectoryError(f"cannot write {file}: {why}; free some space or choose a writable --out, then "
                                   "run the same command again") from None
