"""The varied sampler draws its factors from one table (render/factors.py); these are exactly the labels of the
one-draw-at-a-time sampler it replaced (kept here, verbatim, as the reference)."""

import json

import numpy as np
import pytest

from latentds.render.factors import (ANGLES, FACTORS_BY_NAME, MAX_CUBOIDS, MAX_JOINTS, MAX_POINT_LIGHTS,
                                     MAX_SPOT_LIGHTS, PRESETS, _rgb, _sample_varied, identity_chain)


class _Draws:
    """Uniform draws taken in a fixed order from one vector (one numpy call per sample, not ~90)."""

    COUNT = 1 + 3 * MAX_JOINTS + 3 * MAX_CUBOIDS + 6 + 1 + 9 * MAX_SPOT_LIGHTS + 1 + 7 * MAX_POINT_LIGHTS

    def __init__(self, rng: np.random.Generator):
        self._u = iter(rng.random(self.COUNT).tolist())

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * next(self._u)

    def integer(self, lo: int, hi: int) -> int:
        """Uniform over lo..hi inclusive."""
        return min(hi, lo + int(next(self._u) * (hi - lo + 1)))

    def rgb(self, lo: float, hi: float) -> list[float]:
        return [self.uniform(lo, hi) for _ in range(3)]


def reference_sample_varied(rng: np.random.Generator) -> dict:
    d = _Draws(rng)
    f = FACTORS_BY_NAME
    n_cuboids = d.integer(2, MAX_CUBOIDS)
    joints = [{angle: d.uniform(lo, hi) for angle, (lo, hi) in ANGLES.items()} for _ in range(MAX_JOINTS)]
    colors = [_rgb(d.uniform(0, 1), d.uniform(0.45, 1.0), d.uniform(0.55, 1.0)) for _ in range(MAX_CUBOIDS)]
    light = {
        "azimuth": d.uniform(f["light_azimuth"].low, f["light_azimuth"].high),
        "elevation": d.uniform(f["light_elevation"].low, f["light_elevation"].high),
        "color": d.rgb(f["light_color"].low, f["light_color"].high),
        "intensity": d.uniform(f["light_intensity"].low, f["light_intensity"].high),
    }
    n_spot = d.integer(0, MAX_SPOT_LIGHTS)
    spots = []
    for _ in range(MAX_SPOT_LIGHTS):
        inner = d.uniform(0.05, 0.25)
        spots.append({
            "azimuth": d.uniform(0, 360), "elevation": d.uniform(15, 80), "distance": d.uniform(4.0, 7.0),
            "color": d.rgb(0.3, 1.0), "intensity": d.uniform(20.0, 80.0),
            "inner_cone": inner, "outer_cone": inner + d.uniform(0.1, 0.35),
        })
    n_point = d.integer(0, MAX_POINT_LIGHTS)
    points = [{
        "azimuth": d.uniform(0, 360), "elevation": d.uniform(-10, 80), "distance": d.uniform(2.5, 6.0),
        "color": d.rgb(0.3, 1.0), "intensity": d.uniform(5.0, 40.0),
    } for _ in range(MAX_POINT_LIGHTS)]
    assert next(d._u, None) is None, "every draw is used, in a fixed order"
    return {
        "n_cuboids": n_cuboids,
        "joints": joints,  # trimmed to n_cuboids - 1 by sample_labels, after a sequence may have raised it
        "colors": colors,
        "light": light,
        "spot_lights": spots[:n_spot],
        "point_lights": points[:n_point],
        "camera": dict(PRESETS["varied"].camera),
    }


@pytest.mark.slow
def test_the_table_sampler_gives_the_reference_labels():
    for seed in (0, 7):
        for i in range(6000):
            ours = _sample_varied(np.random.default_rng([seed, 0, i]))
            reference = reference_sample_varied(np.random.default_rng([seed, 0, i]))
            assert json.dumps(ours, sort_keys=True) == json.dumps(reference, sort_keys=True), (seed, i)


def test_identity_chains_are_unchanged():
    for identity in range(500):
        n, colors = identity_chain(3, identity)
        reference = reference_sample_varied(np.random.default_rng([3, 2, identity]))
        assert (n, colors) == (reference["n_cuboids"], reference["colors"])
