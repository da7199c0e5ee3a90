"""The factor vector of any shard set whose manifest has a "factors" table: one float per scalar factor, three
(``_r``, ``_g``, ``_b``) per colour, and a mask of the entries a sample has.

Each manifest row names where its factor lives in a sample's JSON labels (``"path"``; the factor's ``name``
when a row has none), in a small language of its own, parsed (never evaluated as Python):

    n_cuboids           a top-level label
    light.azimuth       a key of an object
    joints[0].phi       an item of a list, then a key
    colors[2]           a whole item (an "rgb" row: three entries, NAME_r, NAME_g, NAME_b)
    len(spot_lights)    the length of a list

``FactorVector(table)`` compiles every path once (per stream) into flat closures over ``operator.itemgetter``;
consecutive rows under one prefix (``joints[0].phi``, ``.theta``, ``.lambda``) are read by one lookup, and the
mask of each pattern of missing entries is built once. A sample costs what the hand-written cuboid accessor it
replaced did (~3.7 µs for a --varied render's 33 entries; the "factors" stage of benchmarks/stream.py's profile). A path that
indexes past the end of a shorter list (a 2-cuboid chain's joint 2) gives value 0 *and* mask False, so no model
mistakes it for a real 0; any other path that does not fit the labels (a missing key, a wrong type, a colour that
is not 3 numbers) makes the sample damaged (DamagedSampleError), as a flipped byte in its JSON would.
"""

from __future__ import annotations

import re
from operator import itemgetter
from typing import Callable

import numpy as np

from latentds.errors import DamagedSampleError, ShardError

TYPES = ("float", "int", "rgb")
MISSING = object()  # what an accessor returns for an index past the end of a list
_CHANNELS = "rgb"
# Keys are runs of letters, digits and "_" (CelebA's "5_o_Clock_Shadow" included); list indices are bracketed.
_STEP = re.compile(r"\.([A-Za-z0-9_]+)|\[([0-9]+)\]")
_HEAD = re.compile(r"[A-Za-z0-9_]+")


def parse_path(path: str) -> tuple[bool, tuple[str | int, ...]]:
    """(is a len(...), steps) of a label path: keys as str, list indices as int. ValueError if not a path."""
    if not isinstance(path, str):
        raise ValueError(f"a factor path is a string, not {path!r}")
    text, is_len = path.strip(), False
    if text.startswith("len(") and text.endswith(")"):
        text, is_len = text[4:-1].strip(), True
    head = _HEAD.match(text)
    if head is None:
        raise ValueError(f"{path!r} is not a label path (a name, then .key or [index] steps, or len(...))")
    steps: list[str | int] = [head.group()]
    pos = head.end()
    while pos < len(text):
        step = _STEP.match(text, pos)
        if step is None:
            raise ValueError(f"{path!r} is not a label path: cannot read {text[pos:]!r} "
                             "(steps are .key or [index])")
        steps.append(step.group(1) if step.group(1) is not None else int(step.group(2)))
        pos = step.end()
    return is_len, tuple(steps)


def compile_path(path: str) -> Callable[[dict], object]:
    """A function labels -> the value at ``path``, or MISSING where an index runs past the end of a list (never
    eval: the path is parsed into steps); KeyError or TypeError where the labels do not fit the path."""
    is_len, steps = parse_path(path)
    get = _accessor(steps)
    if not is_len:
        return get

    def length(labels, get=get):
        value = get(labels)
        return value if value is MISSING else len(value)

    return length


def _accessor(steps: tuple[str | int, ...]) -> Callable[[dict], object]:
    """The lookup of ``steps``: the common shapes as one flat closure each (a call per value, not per step)."""
    kinds = tuple(type(s) for s in steps)
    if kinds == (str,):
        return itemgetter(steps[0])
    if kinds == (str, str):
        a, b = steps
        return lambda x: x[a][b]
    if kinds == (str, int):
        a, i = steps
        return lambda x: x[i] if i < len(x := x[a]) else MISSING
    if kinds == (str, int, str):
        a, i, b = steps
        return lambda x: x[i][b] if i < len(x := x[a]) else MISSING
    return lambda x: _walk(x, steps)


def _walk(x, steps: tuple[str | int, ...]):
    for step in steps:
        if isinstance(step, int) and step >= len(x):
            return MISSING
        x = x[step]
    return x


def expand_table(manifest: dict | None) -> list[dict]:
    """The manifest's factor table with one row per vector entry: an "rgb" row becomes three float rows named
    ``NAME_r``, ``NAME_g``, ``NAME_b`` (the other fields kept); empty without a table."""
    rows = []
    for f in (manifest or {}).get("factors") or []:
        _check_row(f)
        if f["type"] == "rgb":
            rows += [dict(f, name=f"{f['name']}_{c}", type="float") for c in _CHANNELS]
        else:
            rows.append(dict(f))
    return rows


def _check_row(f) -> None:
    if not isinstance(f, dict) or not isinstance(f.get("name"), str) or f.get("type") not in TYPES:
        raise ShardError(f"the manifest's factor row {f!r} needs a name and a type ({', '.join(TYPES)}); if latentds "
                         "made the set, run the command that made it again with --overwrite")


class FactorVector:
    """labels -> (values float32 (K,), present bool (K,)) for a manifest's factor table (K = its expanded rows).

    Build once per stream (``FactorVector.of(manifest)``), call per sample. Pickles as its table (the compiled
    closures are rebuilt), so it travels to DataLoader workers under any start method.
    """

    def __init__(self, table: list[dict]):
        for f in table:
            _check_row(f)
        self.table = [dict(f) for f in table]
        self.names: tuple[str, ...] = tuple(r["name"] for r in expand_table({"factors": self.table}))
        rows = []
        for f in self.table:
            path = f.get("path") or f["name"]
            try:
                rows.append((f, parse_path(path), compile_path(path)))
            except ValueError as e:
                raise ShardError(f"factor {f['name']!r} of the manifest cannot be read: {e}") from None
        self._getters = tuple((f, get, f["type"] == "rgb") for f, _, get in rows)
        self._items = _items(rows)
        self._item_of_entry = tuple(n for n, item in enumerate(self._items) for _ in item[2])
        self._masks: dict[int, np.ndarray] = {}

    @classmethod
    def of(cls, manifest: dict | None) -> FactorVector | None:
        """The factor vector of a shard set's manifest, or None if it has no factor table."""
        table = (manifest or {}).get("factors")
        if table and not (isinstance(table, list) and all(isinstance(f, dict) for f in table)):
            raise ShardError("the manifest's \"factors\" is not a list of factor rows (objects)")
        return cls(table) if table else None

    def __reduce__(self):
        return type(self), (self.table,)

    def __len__(self) -> int:
        return len(self.names)

    def __call__(self, labels: dict) -> tuple[np.ndarray, np.ndarray]:
        values, missing = [], 0
        try:
            for get, kind, zeros, bit in self._items:
                v = get(labels)
                if v is MISSING:
                    values += zeros
                    missing |= bit
                elif kind is _SCALAR:
                    values.append(v)
                else:
                    if kind is _RGB and len(v) != 3:
                        raise TypeError("a colour that is not 3 numbers")
                    values += v
            out = np.array(values, dtype=np.float32)
        except (KeyError, TypeError, IndexError, ValueError) as e:
            raise DamagedSampleError(self._problem(labels, e)) from None
        mask = self._masks.get(missing)
        if mask is None:  # one mask per pattern of missing items (a handful per set), kept and copied out
            mask = np.array([not missing >> item & 1 for item in self._item_of_entry])
            if len(self._masks) < 4096:
                self._masks[missing] = mask
        return out, mask.copy()

    def _problem(self, labels: dict, error: Exception) -> str:
        """Which factor the labels do not fit (the slow path of a damaged sample)."""
        for f, get, rgb in self._getters:
            try:
                v = get(labels)
                if v is not MISSING:
                    np.array(v if rgb else [v], dtype=np.float32).reshape(3 if rgb else 1)
            except (KeyError, TypeError, IndexError, ValueError):
                return f"its labels have no valid factor {f['name']} (at {f.get('path') or f['name']})"
        return f"its factor values are not numbers ({type(error).__name__}: {error})"


_SCALAR, _GROUP, _RGB = "scalar", "group", "rgb"


def _items(rows: list[tuple[dict, tuple[bool, tuple], Callable]]) -> tuple:
    """The compiled table: (get, kind, zeros, bit) per item, where consecutive scalar rows
    that differ only in their last key (``joints[0].phi``, ``joints[0].theta``, ...) share one item: the common
    part is looked up (and bounds-checked) once, the keys taken together by one ``itemgetter``."""
    groups: list[list] = []  # [kind, prefix, [keys], get]
    for f, (is_len, steps), get in rows:
        kind = _RGB if f["type"] == "rgb" else _SCALAR
        groupable = kind is _SCALAR and not is_len and len(steps) > 1 and isinstance(steps[-1], str)
        last = groups[-1] if groups else None
        if groupable and last is not None and last[1] == steps[:-1]:
            last[0] = _GROUP
            last[2].append(steps[-1])
        else:
            groups.append([kind, steps[:-1] if groupable else None, [steps[-1]] if groupable else None, get])
    items = []
    for kind, prefix, keys, get in groups:
        width = len(keys) if kind is _GROUP else 3 if kind is _RGB else 1
        if kind is _GROUP:
            get = _group_accessor(prefix, itemgetter(*keys))
        items.append((get, kind, (0.0,) * width, 1 << len(items)))
    return tuple(items)


def _group_accessor(prefix: tuple[str | int, ...], take: Callable) -> Callable[[dict], object]:
    kinds = tuple(type(s) for s in prefix)
    if kinds == (str,):
        a, = prefix
        return lambda x: take(x[a])
    if kinds == (str, int):
        a, i = prefix
        return lambda x: take(x[i]) if i < len(x := x[a]) else MISSING
    inner = _accessor(prefix)
    return lambda x: MISSING if (y := inner(x)) is MISSING else take(y)


def factor_accessor(manifest: dict | None, name: str):
    """The compiled accessor of factor ``name`` (a row of the manifest's table, not expanded), for a few samples:
    labels -> value (MISSING where the sample lacks it). ShardError if the table has no such factor."""
    for f in (manifest or {}).get("factors") or []:
        if f.get("name") == name:
            try:
                return compile_path(f.get("path") or name)
            except ValueError as e:
                raise ShardError(f"factor {name!r} of the manifest cannot be read: {e}") from None
    raise ShardError(f"the manifest's factor table has no factor {name!r}")
