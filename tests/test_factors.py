import hashlib
import json

import numpy as np
import pytest

from latentds.errors import InvalidParameterError
from latentds.render.factors import (ANGLES, FACTORS_BY_NAME, check_sequence, factor_value, sample_labels,
                                     sequence_factors, set_factor)
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
    ({"preset": "varied", "sequence": "phi_0,elbow", "steps": 4}, "unknown --sequence factor 'elbow'"),
    ({"preset": "varied", "sequence": "phi_0,,theta_0", "steps": 4}, "unknown --sequence factor ''"),
    ({"preset": "varied", "sequence": "phi_0,theta_0,phi_0", "steps": 4}, "names 'phi_0' twice"),
    ({"identities": 4}, "--identities needs --varied"),
    ({"preset": "varied", "identities": 1}, "--identities must be"),
    ({"preset": "varied", "identities": 1_000_001}, "--identities must be"),
    ({"preset": "varied", "identities": 2.5}, "--identities must be"),
    ({"preset": "varied", "identities": True}, "--identities must be"),
])
def test_bad_specs_are_refused_with_a_message(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message.replace("-", r"\-")):
        RenderSpec(**kwargs)


def test_spec_defaults_and_round_trip():
    spec = RenderSpec("varied", size=32, extras=("mask", "depth"))
    assert spec.n == 500_000 and spec.name == "varied" and spec.extras == ("depth", "mask")
    assert RenderSpec(**{k: v for k, v in spec.params().items() if not k.startswith("generator")}) == spec
    ranges = RenderSpec("phi", n=25, shard_size=10).shard_ranges()
    assert [(r.start, r.stop) for r in ranges] == [(0, 10), (10, 20), (20, 25)]


def test_labels_without_identities_are_those_of_earlier_versions():
    """sha256 of these labels' JSON as computed before identities and multi-factor sequences existed."""
    calls = ([("varied", 11, i, 64) for i in range(20)] + [("phi", 0, i, 64) for i in range(5)]
             + [("varied", 11, i, 64, "phi_0", 4) for i in range(8)]
             + [("varied", 11, i, 64, "lambda_2", 3) for i in range(6)])
    labels = [sample_labels(*c) for c in calls]
    assert not any("identity" in lab for lab in labels)
    digest = hashlib.sha256(json.dumps(labels).encode()).hexdigest()
    assert digest == "5714f16e23d6c4ddbe250eb2dd9c8f84154abda00a67fd4e0406363646c8f742"


def test_sequence_factors_split_and_normalise():
    assert sequence_factors(None) == ()
    assert sequence_factors("phi_0") == ("phi_0",)
    assert sequence_factors("phi_0, theta_0,light_azimuth") == ("phi_0", "theta_0", "light_azimuth")
    spec = RenderSpec("varied", n=8, sequence="phi_0, theta_0", steps=4)
    assert spec.sequence == "phi_0,theta_0" and sequence_factors(spec) == ("phi_0", "theta_0")
    assert RenderSpec("varied", n=8, sequence=("phi_0", "theta_0"), steps=4) == spec
    one = RenderSpec("varied", n=8, sequence="phi_0", steps=4)
    assert one.params()["sequence"] == "phi_0" and "identities" not in one.params()
    assert RenderSpec(**{k: v for k, v in spec.params().items() if not k.startswith("generator")}) == spec
    check_sequence("varied", "phi_0", 4)  # still accepts one factor
    with pytest.raises(InvalidParameterError, match="choose one of: phi_0, theta_0"):
        check_sequence("varied", "phi_0,color_0", 4)


def test_multi_factor_sequence_groups_cycle_through_the_factors():
    factors, steps = ("phi_0", "theta_1", "light_azimuth"), 4
    for g in range(6):
        factor = factors[g % len(factors)]
        group = [sample_labels("varied", 5, g * steps + k, 64, ",".join(factors), steps) for k in range(steps)]
        assert all(lab["sequence"] == {"factor": factor, "group": g, "step": k, "steps": steps}
                   for k, lab in enumerate(group))
        f = FACTORS_BY_NAME[factor]
        assert np.allclose([factor_value(lab, factor) for lab in group], np.linspace(f.low, f.high, steps))
        rest = [{k: v for k, v in set_factor(lab, factor, None).items() if k not in ("key", "index", "sequence")}
                for lab in group]
        assert all(r == rest[0] for r in rest)  # nothing else moves
    # A group moving the same factor as a one-factor sequence's is that group exactly.
    assert [sample_labels("varied", 5, i, 64, "phi_0,theta_1", steps) for i in range(steps)] == \
        [sample_labels("varied", 5, i, 64, "phi_0", steps) for i in range(steps)]


def _two_cuboid_indices(seed, count, **kwargs):
    return [i for i in range(200) if sample_labels("varied", seed, i, 64, **kwargs)["n_cuboids"] == 2][:count]


def test_fixing_an_angle_of_a_missing_joint_draws_the_new_joints_from_the_preset():
    from latentds.render.factors import _PLAIN, PRESETS

    for index in _two_cuboid_indices(3, 5):
        labels = sample_labels("varied", 3, index, 64)
        before = json.loads(json.dumps(labels))
        fixed = set_factor(labels, "phi_2", 33.0)
        drawn = PRESETS["varied"].sample(np.random.default_rng([3, _PLAIN, index]))  # every draw of this sample
        assert fixed["n_cuboids"] == 4 and len(fixed["joints"]) == 3 and len(fixed["colors"]) == 4
        assert fixed["joints"][1] == drawn["joints"][1]  # the preset's draws for this sample, not 0 degrees
        assert any(fixed["joints"][1][angle] != 0.0 for angle in ANGLES)
        assert {k: v for k, v in fixed["joints"][2].items() if k != "phi"} == \
            {k: v for k, v in drawn["joints"][2].items() if k != "phi"}
        assert fixed["joints"][2]["phi"] == 33.0
        assert fixed["colors"] == drawn["colors"]  # new cuboids get their own colours, not copies of the last
        assert fixed["joints"][0] == before["joints"][0] and fixed["colors"][:2] == before["colors"]
        assert {k: v for k, v in fixed.items() if k not in ("n_cuboids", "joints", "colors")} == \
            {k: v for k, v in before.items() if k not in ("n_cuboids", "joints", "colors")}
        assert set_factor(sample_labels("varied", 3, index, 64), "phi_2", 33.0) == fixed  # deterministic


def test_fixing_a_missing_joint_keeps_identity_colours_and_sequence_draws():
    from latentds.render.factors import identity_chain

    index = _two_cuboid_indices(4, 1, identities=5)[0]
    labels = sample_labels("varied", 4, index, 64, identities=5)
    fixed = set_factor(labels, "theta_1", -20.0)
    assert fixed["n_cuboids"] == 3 and fixed["colors"] == identity_chain(4, labels["identity"])[1][:3]
    # a sequence group draws once per group: lengthening gives what a sequence over that joint shows
    steps = 4
    group = next(g for g in range(50) if sample_labels("varied", 4, g * steps, 64, "phi_0", steps)["n_cuboids"] == 2)
    labels = sample_labels("varied", 4, group * steps + 1, 64, "phi_0", steps)
    swept = sample_labels("varied", 4, group * steps + 1, 64, "phi_1", steps)
    fixed = set_factor(labels, "phi_1", swept["joints"][1]["phi"])
    assert fixed["joints"][1] == swept["joints"][1] and fixed["colors"] == swept["colors"]


def test_the_phi_preset_has_no_second_joint_to_fix():
    with pytest.raises(InvalidParameterError, match="draws only 1 joint"):
        set_factor(sample_labels("phi", 0, 0, 64), "phi_1", 10.0)
