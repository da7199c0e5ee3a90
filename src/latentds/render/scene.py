"""Labels -> geometry: cuboid poses, light poses and the camera pose, in numpy only (no GL).

Axes follow OpenGL: y is up, the camera looks along its -z. Each cuboid's long axis is its local x,
its height local y (vertical) and its width local z (lateral). Joint 0 sits at the world origin with
cuboid 0 lying along -x; each child hangs off its parent's +x end.
"""

from __future__ import annotations

import numpy as np


def _rot_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]])


def _rot_y(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1]])


def _rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


def _shift_x(dx: float) -> np.ndarray:
    m = np.eye(4)
    m[0, 3] = dx
    return m


def cuboid_poses(labels: dict) -> list[np.ndarray]:
    """World poses (4x4) of the centres of the chain's cuboids, parent first.

    Joint j turns cuboid j+1 relative to cuboid j: Phi about the parent's vertical (y) axis, then Theta about
    the lateral (z) axis, then Lambda about the child's own long (x) axis.
    """
    half = labels["cuboid"]["length"] / 2
    pose = _shift_x(-half)  # cuboid 0's centre; its +x end (joint 0) is the origin
    poses = [pose]
    for joint in labels["joints"]:
        pose = pose @ _shift_x(half) @ _rot_y(joint["phi"]) @ _rot_z(joint["theta"]) @ _rot_x(joint["lambda"])
        pose = pose @ _shift_x(half)
        poses.append(pose)
    return poses


def direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector from the origin towards a point at (azimuth, elevation), azimuth measured from +z towards +x."""
    az, el = np.radians(azimuth), np.radians(elevation)
    return np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])


def orbit_pose(spec: dict) -> np.ndarray:
    """Pose of a camera or light at ``spec``'s azimuth, elevation and distance around its target (default the
    origin), with its -z axis aimed at the target and its x axis horizontal."""
    az, el = np.radians(spec["azimuth"]), np.radians(spec["elevation"])
    sa, ca, se, ce = np.sin(az), np.cos(az), np.sin(el), np.cos(el)
    back = (ce * sa, se, ce * ca)  # direction(azimuth, elevation), written out: this runs per light per image
    target = spec.get("target", (0.0, 0.0, 0.0))
    d = spec.get("distance", 1.0)
    return np.array([
        [ca, -se * sa, back[0], target[0] + d * back[0]],
        [0.0, ce, back[1], target[1] + d * back[1]],
        [-sa, -se * ca, back[2], target[2] + d * back[2]],
        [0.0, 0.0, 0.0, 1.0],
    ])
