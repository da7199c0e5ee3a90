"""encode_json writes exactly json.dumps(sort_keys, compact) bytes, through orjson where that is safe."""

import json

import numpy as np
import pytest

from latentds.render.factors import sample_labels
from latentds.shardsets.encoders import encode_json


def _reference(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.slow
def test_floats_of_every_magnitude():
    rng = np.random.default_rng(0)
    values = (rng.choice([-1.0, 1.0], 200_000) * 10.0 ** rng.uniform(-320, 307, 200_000)).tolist()
    values += rng.uniform(0, 360, 50_000).tolist()
    values += [0.0, -0.0, 1e16, 1e15, 9999999999999998.0, 1e-4, 0.0001, 0.00011, 1e-5, 5e-324,
               1.7976931348623157e308, 0.1, 2.5, 100.0]
    for chunk in range(0, len(values), 1000):
        labels = {"values": values[chunk:chunk + 1000]}
        assert encode_json(labels) == _reference(labels)
    for v in values[:20_000]:
        assert encode_json({"v": v}) == _reference({"v": v}), v


@pytest.mark.parametrize("value", [
    "".join(chr(c) for c in range(128)), "\x7f", "caf\u00e9", "\u2028", None, True, "1e5", "x0.00001",
    2 ** 70, {"b": 1, "a": [1, 2, {"d": None}]}, {1: 2}, (1, 2.5e-7), {"z": {"y": [], "x": {}}},
])
def test_special_values_strings_and_keys(value):
    assert encode_json({"k": value}) == _reference({"k": value})


@pytest.mark.parametrize("preset", ["varied", "phi"])
def test_render_labels(preset):
    for i in range(500):
        labels = sample_labels(preset, 11, i, 64)
        assert encode_json(labels) == _reference(labels)


def test_nan_and_infinity_are_written_as_json_null():
    """json.dumps would write NaN / Infinity, which is not JSON (load_shards' parser refuses it)."""
    assert encode_json({"a": float("nan"), "b": [float("inf"), -float("inf")]}) == b'{"a":null,"b":[null,null]}'
    # also where json.dumps writes the labels (a tiny float sends them there; orjson refuses int keys, huge ints
    # and numpy scalars)
    assert encode_json({"a": float("nan"), "t": 1e-7}) == b'{"a":null,"t":1e-07}'
    assert encode_json({"a": 2 ** 70, "b": float("inf")}) == b'{"a":1180591620717411303424,"b":null}'
    assert encode_json({"x": {2: float("nan")}}) == b'{"x":{"2":null}}'
    assert encode_json({"a": np.float64("nan"), "b": np.float64(0.5)}) == b'{"a":null,"b":0.5}'


def test_render_labels_take_the_fast_path(monkeypatch):
    calls = []
    monkeypatch.setattr(json, "dumps", lambda *a, **k: calls.append(1) or "")
    encode_json(sample_labels("varied", 0, 3, 64))  # "sequence": null and floats in plain notation
    assert calls == []
