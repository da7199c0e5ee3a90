import numpy as np
import pytest

from latentds.errors import InvalidParameterError
from latentds.render.factors import ANGLES, FACTORS_BY_NAME, factor_value, sample_labels
from latentds.render.spec import RenderSpec


def test_sample_depends_only_on_seed_and_index():
    a = sample_labels("varied", 7, 123, 64)
    assert a == sample_labels("varied", 7, 123, 64)
    assert a != sample_labels("varied", 7, 124, 64)
    assert a != sample_labels("varied", 8, 123, 64)
    assert a["key"] == "000000123" and "." not in a["key"]


def test_varied_values_stay_in_their_ranges_and_counts_match():
    for i in range(300):
        labels = sample_labels("varied", 0, i, 64)
        n = labels["n_cuboids"]
        assert 2 <= n <= 4 and len(labels["joints"]) == n - 1 and len(labels["colors"]) == n
        assert 0 <= len(labels["spot_lights"]) <= 4 and 0 <= len(labels["point_lights"]) <= 4
        for joint in labels["joints"]:
            for angle, (lo, hi) in ANGLES.items():
                assert lo <= joint[angle] <= hi
        for name in ("light_azimuth", "light_elevation", "light_intensity"):
            f = FACTORS_BY_NAME[name]
            assert f.low <= factor_value(labels, name) <= f.high
        for spot in labels["spot_lights"]:
            assert 0 <= spot["inner_cone"] <= spot["outer_cone"] <= np.pi / 2


def test_varied_draws_cover_every_chain_length():
    counts = {sample_labels("varied", 0, i, 64)["n_cuboids"] for i in range(100)}
    assert counts == {2, 3, 4}


def test_phi_preset_moves_only_phi_0():
    samples = [sample_labels("phi", 0, i, 64) for i in range(50)]
    phis = [s["joints"][0]["phi"] for s in samples]
    assert len(set(phis)) == 50 and min(phis) < -90 and max(phis) > 90  # spread over the range
    for s in samples:
        s["joints"][0]["phi"] = 0.0
        s.pop("key"), s.pop("index")
    assert all(s == samples[0] for s in samples)


def test_sequence_groups_move_one_factor_linearly():
    steps = 5
    group = [sample_labels("varied", 3, 10 + k, 64, "theta_1", steps) for k in range(steps)]  # group 2
    values = [g["joints"][1]["theta"] for g in group]
    assert np.allclose(values, np.linspace(-60, 60, steps))
    assert [g["sequence"]["step"] for g in group] == list(range(steps))
    assert {g["sequence"]["group"] for g in group} == {2}
    rest = []
    for g in group:
        g["joints"][1]["theta"] = None
        rest.append({k: v for k, v in g.items() if k not in ("key", "index", "sequence")})
    assert all(r == rest[0] for r in rest)
    assert group[0]["n_cuboids"] >= 3  # joint 1 exists in every group that sweeps it
    other = sample_labels("varied", 3, 15, 64, "theta_1", steps)
    assert other["sequence"]["group"] == 3 and other["colors"] != group[0]["colors"]


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "--n"),
    ({"size": -3}, "--size"),
    ({"size": 100000}, "--size"),
    ({"seed": -1}, "--seed"),
    ({"preset": "nope"}, "unknown preset"),
    ({"sequence": "phi_7", "steps": 4}, "choose one of: phi_0"),
    ({"preset": "varied", "sequence": "color_0", "steps": 4}, "unknown --sequence factor"),
    ({"sequence": "phi_0", "steps": 1}, "--steps"),
    ({"sequence": "phi_0", "steps": 3, "n": 10}, "use --n 12"),
    ({"extras": ("normals",)}, "--with"),
    ({"name": "a.b"}, "--name"),
])
def test_bad_specs_are_refused_with_a_message(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message.replace("-", r"\-")):
        RenderSpec(**kwargs)


def test_spec_defaults_and_round_trip():
    spec = RenderSpec("varied", size=32, extras=("mask", "depth"))
    assert spec.n == 500_000 and spec.name == "varied" and spec.extras == ("depth", "mask")
    assert RenderSpec.from_params(spec.params()) == spec
    ranges = RenderSpec("phi", n=25, shard_size=10).shard_ranges()
    assert [(r.start, r.stop) for r in ranges] == [(0, 10), (10, 20), (20, 25)]
