"""The direct draw path gives exactly the bytes of pyrender's own render(), and the switch between them works."""

import copy

import numpy as np
import pytest

from latentds.errors import InvalidParameterError
from latentds.render.factors import sample_labels
from latentds.render.renderer import PATH_ENV, SEG_COLORS, _nearest_seg_color, render_path, seg_to_ids
from latentds.render.scene import cuboid_poses, frame_of, orbit_pose, orbit_poses


def _assert_same(renderer, labels, depth=False, mask=False):
    ours = renderer.render(labels, depth=depth, mask=mask, path="direct")
    reference = renderer.render(labels, depth=depth, mask=mask, path="pyrender")
    assert ours.keys() == reference.keys()
    for key in reference:
        assert ours[key].dtype == reference[key].dtype and ours[key].shape == reference[key].shape, key
        assert ours[key].tobytes() == reference[key].tobytes(), (labels["preset"], labels["index"], key)


@pytest.mark.slow
def test_direct_path_is_pixel_identical_to_pyrender_on_varied_samples(renderer):
    assert renderer._direct is not None, "the direct path is not available on this GL platform"
    for i in range(240):
        _assert_same(renderer, sample_labels("varied", 0, i, 32))
    for i in range(60):  # depth and mask too, and another size
        _assert_same(renderer, sample_labels("varied", 7, i, 64), depth=True, mask=True)


def test_direct_path_is_pixel_identical_on_every_preset_and_variant(renderer):
    cases = [sample_labels("phi", 0, i, 32) for i in range(0, 100, 7)]
    cases += [sample_labels("phi", 3, i, 48) for i in range(5)]
    cases += [sample_labels("varied", 0, i, 32, "phi_0,light_azimuth", 4) for i in range(8)]
    cases += [sample_labels("varied", 0, i, 32, identities=5) for i in range(8)]
    for labels in cases:
        _assert_same(renderer, labels, depth=True, mask=True)


def test_direct_path_handles_no_extra_lights_and_all_of_them(renderer):
    labels = sample_labels("varied", 0, 2560, 32)  # four spot and four point lights
    _assert_same(renderer, labels, depth=True, mask=True)
    bare = copy.deepcopy(labels)
    bare["spot_lights"], bare["point_lights"] = [], []
    _assert_same(renderer, bare)
    # a sample after a bare one: the light arrays must not keep anything of an earlier frame
    _assert_same(renderer, sample_labels("varied", 0, 1504, 32))


def test_paths_alternate_and_resize_without_leaking_state(renderer):
    for i, size in enumerate([32, 16, 64, 32]):
        labels = sample_labels("varied", 2, i, size)
        a = renderer.render(labels, path="direct")
        b = renderer.render(labels, path="pyrender")
        c = renderer.render(labels, path="direct", depth=True, mask=True)
        d = renderer.render(labels, path="direct")  # the colour pass right after a segmentation pass
        assert a["rgb"].shape == (size, size, 3)
        assert a["rgb"].tobytes() == b["rgb"].tobytes() == c["rgb"].tobytes() == d["rgb"].tobytes()
    renderer.render(sample_labels("varied", 0, 0, 32))


def test_mask_lookup_gives_the_ids_of_the_general_rule(renderer):
    rng = np.random.default_rng(0)
    palette = np.concatenate([SEG_COLORS, [[0, 0, 0]]]).astype(np.uint8)
    images = [np.array([[[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)]], dtype=np.uint8),
              palette[rng.integers(0, 5, (32, 32))],  # pure colours only: the lookup
              rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)]  # blends: the general rule
    for i in range(20):
        labels = sample_labels("varied", 1, i, 32)
        renderer.render(labels)
        images.append(renderer._direct.render(frame_of(labels), 32, mask=True)["seg"])
    for image in images:
        assert np.array_equal(seg_to_ids(image), _nearest_seg_color(image))


def test_the_path_is_chosen_by_the_environment(monkeypatch):
    monkeypatch.delenv(PATH_ENV, raising=False)
    assert render_path() == "direct"
    monkeypatch.setenv(PATH_ENV, "pyrender")
    assert render_path() == "pyrender"
    monkeypatch.setenv(PATH_ENV, "fast")
    with pytest.raises(InvalidParameterError, match=PATH_ENV):
        render_path()


# --- the frame's numbers: written for speed, the same bits as the plain formulas ---------------------------------

def _rot(axis, deg):
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    m = np.eye(4)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def _shift(dx):
    m = np.eye(4)
    m[0, 3] = dx
    return m


def _plain_cuboid_poses(labels):
    half = labels["cuboid"]["length"] / 2
    pose = _shift(-half)
    poses = [pose]
    for joint in labels["joints"]:
        pose = pose @ _shift(half) @ _rot("y", joint["phi"]) @ _rot("z", joint["theta"]) @ _rot("x", joint["lambda"])
        pose = pose @ _shift(half)
        poses.append(pose)
    return poses


def _plain_orbit_pose(spec):
    az, el = np.radians(spec["azimuth"]), np.radians(spec["elevation"])
    sa, ca, se, ce = np.sin(az), np.cos(az), np.sin(el), np.cos(el)
    back = (ce * sa, se, ce * ca)
    target = spec.get("target", (0.0, 0.0, 0.0))
    d = spec.get("distance", 1.0)
    return np.array([[ca, -se * sa, back[0], target[0] + d * back[0]], [0.0, ce, back[1], target[1] + d * back[1]],
                     [-sa, -se * ca, back[2], target[2] + d * back[2]], [0.0, 0.0, 0.0, 1.0]])


def test_poses_are_bitwise_those_of_the_plain_formulas():
    for preset, seed, n in (("varied", 0, 400), ("varied", 9, 200), ("phi", 0, 50)):
        for i in range(n):
            labels = sample_labels(preset, seed, i, 32)
            fast, plain = cuboid_poses(labels), _plain_cuboid_poses(labels)
            assert len(fast) == len(plain) == labels["n_cuboids"]
            assert all(a.tobytes() == b.tobytes() for a, b in zip(fast, plain))
            specs = [labels["light"], *labels["spot_lights"], *labels["point_lights"], labels["camera"]]
            assert all(a.tobytes() == _plain_orbit_pose(s).tobytes() for a, s in zip(orbit_poses(specs), specs))
            assert orbit_pose(labels["camera"]).tobytes() == _plain_orbit_pose(labels["camera"]).tobytes()
            frame = frame_of(labels)
            assert len(frame.spots) == len(labels["spot_lights"]) and len(frame.points) == len(labels["point_lights"])



def test_batched_stages_give_each_sample_the_bytes_it_has_alone(renderer):
    """write_shard renders in stage-by-stage batches; a sample's bytes must not depend on its batch."""
    from latentds.render.shard_writer import BATCH, render_samples
    from latentds.render.spec import RenderSpec

    spec = RenderSpec("varied", n=BATCH + 9, size=32, seed=3, extras=("depth", "mask"))
    batched = list(render_samples(spec, range(spec.n), renderer))
    assert [s["__key__"] for s in batched] == [sample_labels("varied", 3, i, 32)["key"] for i in range(spec.n)]
    for i in (BATCH + 8, 0, BATCH, 5):  # out of order, each alone
        (alone,) = render_samples(spec, range(i, i + 1), renderer)
        assert alone == batched[i]
    assert {"png", "json", "depth.npy", "mask.png"} <= set(batched[0])
