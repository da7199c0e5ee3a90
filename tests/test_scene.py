import numpy as np

from latentds.render.factors import sample_labels
from latentds.render.scene import cuboid_poses, direction, orbit_pose


def _end(pose, length, sign):
    return (pose @ np.array([sign * length / 2, 0, 0, 1]))[:3]


def test_chain_is_joined_end_to_end_with_joint_0_at_origin():
    labels = sample_labels("varied", 0, 5, 64)
    labels["n_cuboids"] = 4
    labels["joints"] = [{"phi": 30.0, "theta": -20.0, "lambda": 45.0}, {"phi": -70.0, "theta": 10.0, "lambda": 0.0},
                        {"phi": 100.0, "theta": 50.0, "lambda": -80.0}]
    length = labels["cuboid"]["length"]
    poses = cuboid_poses(labels)
    assert len(poses) == 4
    assert np.allclose(_end(poses[0], length, +1), 0)
    for parent, child in zip(poses, poses[1:]):
        assert np.allclose(_end(parent, length, +1), _end(child, length, -1))
        assert np.allclose(parent[:3, :3].T @ parent[:3, :3], np.eye(3))


def test_phi_turns_about_the_vertical_axis_and_theta_lifts():
    labels = sample_labels("phi", 0, 0, 64)
    flat = [dict(labels, joints=[{"phi": p, "theta": 0.0, "lambda": 0.0}]) for p in (0.0, 60.0, -120.0)]
    centres = [cuboid_poses(lab)[1][:3, 3] for lab in flat]
    assert all(abs(c[1]) < 1e-12 for c in centres)  # stays in the horizontal plane
    assert np.allclose([np.linalg.norm(c) for c in centres], 0.5)  # swings around the joint
    assert np.allclose(centres[0], [0.5, 0, 0])
    lifted = cuboid_poses(dict(labels, joints=[{"phi": 0.0, "theta": 30.0, "lambda": 0.0}]))[1][:3, 3]
    assert lifted[1] > 0.2


def test_orbit_pose_looks_at_its_target():
    spec = {"azimuth": 75.0, "elevation": 20.0, "distance": 3.0, "target": [0.3, 0.0, 0.0]}
    pose = orbit_pose(spec)
    assert np.allclose(pose[:3, 3], np.array([0.3, 0, 0]) + 3 * direction(75, 20))
    forward = -pose[:3, 2]
    assert np.allclose(pose[:3, 3] + 3 * forward, [0.3, 0, 0])
