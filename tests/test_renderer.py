"""The pixels agree with the labels."""

import copy
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from latentds.render.factors import sample_labels


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _erode(mask: np.ndarray) -> np.ndarray:
    return ~_dilate(~mask)


def test_mask_shows_exactly_n_cuboids_and_depth_agrees(renderer):
    seen = set()
    for i in range(12):
        labels = sample_labels("varied", 1, i, 32)
        out = renderer.render(labels, mask=True)
        # a folded chain may hide a cuboid, but never shows one it does not have
        assert set(np.unique(out["mask"])) <= set(range(labels["n_cuboids"] + 1))
        for joint in labels["joints"]:  # an open chain hides none of its cuboids
            joint.update(phi=joint["phi"] / 5, theta=joint["theta"] / 5)
        out = renderer.render(labels, depth=True, mask=True)
        ids = set(np.unique(out["mask"])) - {0}
        assert ids == set(range(1, labels["n_cuboids"] + 1)), (i, ids)
        assert out["rgb"].shape == (32, 32, 3) and out["rgb"].dtype == np.uint8
        # depth and mask are sampled at the same pixel centres: positive exactly on the cuboids
        assert np.array_equal(out["depth"] > 0, out["mask"] > 0)
        assert 3 < out["depth"].max() < 12  # the chain is about 7 units from the camera
        seen.add(labels["n_cuboids"])
    assert seen == {2, 3, 4}


def _linear_to_srgb_direction(rgb):
    v = np.asarray(rgb) ** (1 / 2.2)  # pyrender gamma-encodes its output
    return v / np.linalg.norm(v)


def test_each_cuboid_shows_its_recorded_colour(renderer):
    for i in range(6):
        labels = sample_labels("varied", 2, i, 32)
        # white light only, so that a surface's colour is its base colour times a grey factor
        labels["light"].update(color=[1.0, 1.0, 1.0], elevation=60.0)
        labels["spot_lights"], labels["point_lights"] = [], []
        out = renderer.render(labels, mask=True)
        dirs = [_linear_to_srgb_direction(c) for c in labels["colors"]]
        for k in range(labels["n_cuboids"]):
            region = _erode(out["mask"] == k + 1)
            if region.sum() < 3:
                continue
            seen = np.median(out["rgb"][region].astype(float), axis=0)
            seen /= np.linalg.norm(seen)
            assert seen @ dirs[k] > 0.97, (i, k, seen, dirs[k])
            others = [seen @ d for j, d in enumerate(dirs) if j != k and np.linalg.norm(dirs[j] - dirs[k]) > 0.3]
            assert all(seen @ dirs[k] > o for o in others)


def test_phi_samples_differ_only_where_the_moving_cuboid_is(renderer):
    a = renderer.render(sample_labels("phi", 0, 3, 32), mask=True)
    b = renderer.render(sample_labels("phi", 0, 8, 32), mask=True)
    changed = (a["rgb"] != b["rgb"]).any(axis=-1)
    moving = _dilate((a["mask"] == 2) | (b["mask"] == 2))
    assert changed.sum() > 20
    assert not (changed & ~moving).any()
    assert ((a["mask"] == 1) & ~moving).sum() > 20  # cuboid 0 is visible, and unchanged


def _base():
    labels = sample_labels("varied", 4, 0, 32)
    labels["n_cuboids"] = 4
    labels["joints"] = [{"phi": 40.0, "theta": 10.0, "lambda": 20.0}, {"phi": -50.0, "theta": -15.0, "lambda": 30.0},
                        {"phi": 60.0, "theta": 20.0, "lambda": -25.0}]
    labels["colors"] = [[0.8, 0.3, 0.2], [0.2, 0.7, 0.3], [0.3, 0.4, 0.9], [0.9, 0.8, 0.2]]
    labels["light"] = {"azimuth": 10.0, "elevation": 50.0, "color": [1.0, 1.0, 1.0], "intensity": 3.0}
    labels["spot_lights"] = [{"azimuth": 30.0, "elevation": 45.0, "distance": 5.0, "color": [0.9, 0.8, 0.7],
                              "intensity": 60.0, "inner_cone": 0.15, "outer_cone": 0.35}]
    labels["point_lights"] = [{"azimuth": -20.0, "elevation": 30.0, "distance": 3.5, "color": [0.6, 0.7, 1.0],
                               "intensity": 25.0}]
    return labels


PERTURBATIONS = {
    "n_cuboids": lambda s: s.update(n_cuboids=3, joints=s["joints"][:2], colors=s["colors"][:3]),
    **{f"{a}_{j}": (lambda s, a=a, j=j: s["joints"][j].__setitem__(a, s["joints"][j][a] + 25.0))
       for a in ("phi", "theta", "lambda") for j in range(3)},
    **{f"color_{k}": (lambda s, k=k: s["colors"].__setitem__(k, s["colors"][k][::-1])) for k in range(4)},
    "light_azimuth": lambda s: s["light"].__setitem__("azimuth", s["light"]["azimuth"] + 60),
    "light_elevation": lambda s: s["light"].__setitem__("elevation", 25.0 if s["light"]["elevation"] > 50 else 80.0),
    "light_intensity": lambda s: s["light"].__setitem__("intensity", s["light"]["intensity"] * 0.5),
    "light_color": lambda s: s["light"].__setitem__("color", [0.7, 0.7, 1.0]),
    "n_spot_lights": lambda s: s.update(spot_lights=[]),
    "n_point_lights": lambda s: s.update(point_lights=[]),
    **{f"spot_{k}": (lambda s, k=k, v=v: s["spot_lights"][0].__setitem__(k, v))
       for k, v in [("azimuth", 80.0), ("elevation", 70.0), ("distance", 7.0), ("color", [0.3, 0.3, 1.0]),
                    ("intensity", 20.0), ("inner_cone", 0.33), ("outer_cone", 0.2)]},
    **{f"point_{k}": (lambda s, k=k, v=v: s["point_lights"][0].__setitem__(k, v))
       for k, v in [("azimuth", 120.0), ("elevation", 70.0), ("distance", 6.0), ("color", [1.0, 0.2, 0.2]),
                    ("intensity", 5.0)]},
}


@pytest.mark.parametrize("factor", sorted(PERTURBATIONS))
def test_changing_any_single_factor_changes_the_pixels(renderer, factor):
    base = _base()
    changed = copy.deepcopy(base)
    PERTURBATIONS[factor](changed)
    a = renderer.render(base)["rgb"].astype(int)
    b = renderer.render(changed)["rgb"].astype(int)
    assert np.abs(a - b).sum(axis=-1).max() >= 24, factor  # clearly visible on at least one pixel
    assert (np.abs(a - b).sum(axis=-1) > 0).sum() >= 3, factor


def test_shard_json_re_renders_the_same_image(phi_set, renderer):
    spec, out = phi_set
    with tarfile.open(out / spec.shard_name(1)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    key = "000000013"
    labels = json.loads(members[f"{key}.json"])
    stored = np.asarray(Image.open(io.BytesIO(members[f"{key}.png"])))
    assert np.array_equal(renderer.render(labels)["rgb"], stored)
    assert renderer.size == 16
