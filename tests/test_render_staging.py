"""staging.stage derives, for a batch, exactly the values the one-sample path (frame_of + DirectDraw.render) sends."""

import copy

import numpy as np
import pytest

from latentds.render.factors import sample_labels
from latentds.render.scene import cuboid_poses, frame_of
from latentds.render.staging import chain_poses, stage


def _sent(direct, n_cuboids, n_spots, n_points):
    """The offsets (into DirectDraw.f32) of every value a frame with these counts uploads."""
    spans = [(direct.V[0], 16), (direct.P[0], 16), (direct.cam_pos[0], 3), (direct.ambient[0], 3),
             (direct.sun_block[0], 7)]
    spans += [(block[0], 12) for block in direct.spot_blocks[:n_spots]]
    spans += [(block[0], 7) for block in direct.point_blocks[:n_points]]
    for (m, _), (c, _), (s, _) in direct.cuboid_blocks[:n_cuboids]:
        spans += [(m, 16), (c, 4), (s, 3)]
    return np.concatenate([np.arange(o, o + n) for o, n in spans])


@pytest.fixture
def captured(renderer, monkeypatch):
    """DirectDraw whose draw() records (f32 values, order, n_spots, n_points) instead of drawing."""
    direct = renderer._direct
    calls = []
    monkeypatch.setattr(direct, "draw", lambda order, n_spots, n_points, *a, **k: calls.append(
        (direct.f32.copy(), list(order), n_spots, n_points)))
    return direct, calls


def _cases():
    cases = [sample_labels("varied", seed, i, 32) for seed in (0, 11) for i in range(700)]
    cases += [sample_labels("phi", 0, i, 32) for i in range(0, 400, 5)]
    cases += [sample_labels("varied", 0, i, 32, "phi_0,light_azimuth", 4) for i in range(40)]
    cases += [sample_labels("varied", 0, i, 32, identities=5) for i in range(40)]
    bare = copy.deepcopy(sample_labels("varied", 0, 2560, 32))  # 4 spot and 4 point lights ...
    cases.append(copy.deepcopy(bare))
    bare["spot_lights"], bare["point_lights"] = [], []  # ... and none
    cases.append(bare)
    return cases


def test_a_batch_gets_the_values_of_each_sample_alone(captured):
    direct, calls = captured
    cases = _cases()
    for start in range(0, len(cases), 32):  # batches mixing chain lengths, light counts and presets
        batch = cases[start:start + 32]
        staged = stage(direct, batch, 32)
        assert len(staged) == len(batch)
        for labels, ours in zip(batch, staged):
            calls.clear()
            direct.render(frame_of(labels), 32)
            (values, order, n_spots, n_points), = calls
            assert (ours.order, ours.n_spots, ours.n_points) == (order, n_spots, n_points), labels["index"]
            sent = _sent(direct, len(order), n_spots, n_points)
            assert ours.row[sent].tobytes() == values[sent].tobytes(), (labels["preset"], labels["index"])


def test_the_values_do_not_depend_on_the_batch(captured):
    direct, _ = captured
    cases = _cases()[:64]
    together = stage(direct, cases, 32)
    for i in (0, 17, 63):
        (alone,) = stage(direct, [cases[i]], 32)
        sent = _sent(direct, len(alone.order), alone.n_spots, alone.n_points)
        assert alone.order == together[i].order and alone.row[sent].tobytes() == together[i].row[sent].tobytes()


def test_chain_poses_are_those_of_cuboid_poses():
    labels = [sample_labels("varied", 4, i, 32) for i in range(300)]
    batched = chain_poses(labels)
    for lab, poses in zip(labels, batched):
        alone = cuboid_poses(lab)
        assert poses[:len(alone)].tobytes() == np.stack(alone).tobytes()
    two = chain_poses([sample_labels("phi", 0, i, 32) for i in range(8)])  # nothing uninitialised past a chain
    assert np.isfinite(two).all() and not two[:, 2:].any()


def test_render_batch_gives_the_bytes_of_pyrender(renderer):
    labels = [sample_labels("varied", 8, i, 32) for i in range(40)]
    labels[5]["spot_lights"] = labels[6]["point_lights"] = []
    batch = renderer.render_batch(labels, depth=True, mask=True)
    for lab, ours in zip(labels, batch):
        reference = renderer.render(lab, depth=True, mask=True, path="pyrender")
        assert ours.keys() == reference.keys()
        assert all(ours[key].tobytes() == reference[key].tobytes() for key in reference), lab["index"]
    # mixed sizes fall back to one sample at a time, with the same bytes
    mixed = [sample_labels("varied", 8, 0, 16), sample_labels("varied", 8, 1, 32)]
    for lab, ours in zip(mixed, renderer.render_batch(mixed)):
        assert ours["rgb"].shape == (lab["size"], lab["size"], 3)
        assert ours["rgb"].tobytes() == renderer.render(lab, path="pyrender")["rgb"].tobytes()
    assert renderer.render_batch([]) == []
