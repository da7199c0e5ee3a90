"""Labels -> geometry: cuboid poses, light poses and the camera pose, in numpy only (no GL); ``frame_of`` gathers
them into the ``Frame`` both render paths draw.

Axes follow OpenGL: y is up, the camera looks along its -z. Each cuboid's long axis is its local x,
its height local y (vertical) and its width local z (lateral). Joint 0 sits at the world origin with
cuboid 0 lying along -x; each child hangs off its parent's +x end.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


_EYE = np.eye(4)


_SHIFTS: dict[float, np.ndarray] = {}


def shift_x(dx: float) -> np.ndarray:
    """A translation by dx along x (read-only: one array per dx, made once; the cuboid length is fixed)."""
    m = _SHIFTS.get(dx)
    if m is None:
        m = np.eye(4)
        m[0, 3] = dx
        m.flags.writeable = False
        if len(_SHIFTS) < 64:
            _SHIFTS[dx] = m
    return m


def cuboid_poses(labels: dict) -> list[np.ndarray]:
    """World poses (4x4) of the centres of the chain's cuboids, parent first.

    Joint j turns cuboid j+1 relative to cuboid j: Phi about the parent's vertical (y) axis, then Theta about
    the lateral (z) axis, then Lambda about the child's own long (x) axis:
    ``pose_j+1 = pose_j @ shift(L/2) @ rot_y(phi) @ rot_z(theta) @ rot_x(lambda) @ shift(L/2)``, multiplied left to
    right. This runs once per image: the sines and cosines of all angles come from one numpy call each (the same
    values as per-angle calls) and each rotation is written into a copy of the identity.
    """
    half = labels["cuboid"]["length"] / 2
    pose = shift_x(-half).copy()  # cuboid 0's centre; its +x end (joint 0) is the origin
    poses = [pose]
    joints = labels["joints"]
    if not joints:
        return poses
    shift = shift_x(half)
    angles = np.radians([[joint["phi"], joint["theta"], joint["lambda"]] for joint in joints])
    for (cy, cz, cx), (sy, sz, sx) in zip(np.cos(angles).tolist(), np.sin(angles).tolist()):
        rot_y, rot_z, rot_x = _EYE.copy(), _EYE.copy(), _EYE.copy()
        rot_y[0, 0] = rot_y[2, 2] = cy
        rot_y[0, 2], rot_y[2, 0] = sy, -sy
        rot_z[0, 0] = rot_z[1, 1] = cz
        rot_z[0, 1], rot_z[1, 0] = -sz, sz
        rot_x[1, 1] = rot_x[2, 2] = cx
        rot_x[1, 2], rot_x[2, 1] = -sx, sx
        pose = pose @ shift @ rot_y @ rot_z @ rot_x
        pose = pose @ shift
        poses.append(pose)
    return poses


def direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector from the origin towards a point at (azimuth, elevation), azimuth measured from +z towards +x."""
    az, el = np.radians(azimuth), np.radians(elevation)
    return np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])


def orbit_pose(spec: dict) -> np.ndarray:
    """Pose of a camera or light at ``spec``'s azimuth, elevation and distance around its target (default the
    origin), with its -z axis aimed at the target and its x axis horizontal."""
    return orbit_poses([spec])[0]


def orbit_poses(specs: list[dict]) -> list[np.ndarray]:
    """``orbit_pose`` of each spec, computed together (element-wise the same arithmetic, so the same values)."""
    return list(orbit_matrices(specs))


def orbit_matrices(specs: list[dict]) -> np.ndarray:
    """(len(specs), 4, 4): ``orbit_pose`` of each spec, stacked."""
    az = np.radians([spec["azimuth"] for spec in specs])
    el = np.radians([spec["elevation"] for spec in specs])
    sa, ca, se, ce = np.sin(az), np.cos(az), np.sin(el), np.cos(el)
    back = (ce * sa, se, ce * ca)  # direction(azimuth, elevation), written out
    target = np.array([spec.get("target", (0.0, 0.0, 0.0)) for spec in specs], dtype=float)
    d = np.array([spec.get("distance", 1.0) for spec in specs], dtype=float)
    m = np.zeros((len(specs), 4, 4))
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2], m[:, 0, 3] = ca, -se * sa, back[0], target[:, 0] + d * back[0]
    m[:, 1, 1], m[:, 1, 2], m[:, 1, 3] = ce, back[1], target[:, 1] + d * back[1]
    m[:, 2, 0], m[:, 2, 1], m[:, 2, 2], m[:, 2, 3] = -sa, -se * ca, back[2], target[:, 2] + d * back[2]
    m[:, 3, 3] = 1.0
    return m


class Light(NamedTuple):
    """One light of a frame: its pose (its -z axis points where it shines), linear RGB colour and intensity;
    spot lights also have their cone angles in radians."""

    pose: np.ndarray
    color: list
    intensity: float
    inner_cone: float | None = None
    outer_cone: float | None = None


class Frame(NamedTuple):
    """Everything a renderer needs to draw one sample, computed once from its labels.

    Both render paths (pyrender's scene and the direct draw loop) consume the same Frame, so they see bit-identical
    inputs. Lists are in label order: cuboid k, spot light k and point light k are always slot k.
    """

    cuboid_poses: list  # (4, 4) world poses of the chain's n_cuboids cuboids, parent first
    colors: list  # linear RGB per cuboid
    sun: Light
    spots: list  # 0-4 Lights
    points: list  # 0-4 Lights
    camera_pose: np.ndarray
    yfov: float  # radians
    ambient: float


def frame_of(labels: dict) -> Frame:
    """A sample's labels (see ``factors.py``) -> the Frame that draws it."""
    light, spots, points, cam = labels["light"], labels["spot_lights"], labels["point_lights"], labels["camera"]
    poses = orbit_poses([light, *spots, *points, cam])
    return Frame(
        cuboid_poses=cuboid_poses(labels),
        colors=labels["colors"],
        sun=Light(poses[0], light["color"], light["intensity"]),
        spots=[Light(pose, s["color"], s["intensity"], s["inner_cone"], s["outer_cone"])
               for pose, s in zip(poses[1:], spots)],
        points=[Light(pose, p["color"], p["intensity"]) for pose, p in zip(poses[1 + len(spots):], points)],
        camera_pose=poses[-1],
        yfov=float(np.radians(cam["yfov"])),
        ambient=labels["ambient"],
    )
