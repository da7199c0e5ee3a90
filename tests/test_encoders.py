"""encode_json writes exactly json.dumps(sort_keys, compact) bytes, through orjson where that is safe."""

import json

import numpy as np
import pytest

from latentds.render.factors import sample_labels
from latentds.shardsets.encoders import encode_json


def _reference(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


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
    "".join(chr(c) for c in range(128)), "\x7f", "caf\u00e9", "\u2028", float("nan"), float("inf"), None, True,
    2 ** 70, {"b": 1, "a": [1, 2, {"d": None}]}, {1: 2}, (1, 2.5e-7), {"z": {"y": [], "x": {}}},
])
def test_special_values_strings_and_keys(value):
    assert encode_json({"k": value}) == _reference({"k": value})


@pytest.mark.parametrize("preset", ["varied", "phi"])
def test_render_labels(preset):
    for i in range(500):
        labels = sample_labels(preset, 11, i, 64)
        assert encode_json(labels) == _reference(labels)
