"""A batch of labels -> the direct draw path's uniform values, computed across the batch in a few numpy calls.

``DirectDraw.render(frame_of(labels))`` derives each sample's values one sample at a time: about 70 µs of small
numpy calls per image (4x4 products, sines, cosines, copies into the staging array), ~12% of `latentds render`'s
CPU time at 64 px. ``stage`` does the same arithmetic for a whole batch at once: every operation is the one the
per-sample path applies, element for element, so the values are bit-identical (tests/test_render_staging.py
compares the two on thousands of samples of every preset; tests/test_render_paths.py compares the pixels with
pyrender's own render()). What makes "the same operation" true:

- sines and cosines: numpy's float64 sin/cos give each element the same value whatever the array's shape, length
  or position of the element (the per-sample path already takes them over arrays);
- 4x4 products: ``a @ b`` over stacks calls the same BLAS gemm for each matrix as ``a @ b`` on one pair, and
  ``np.matmul(poses, I)`` is ``np.dot(pose, I)`` (what pyrender's ``Scene.get_pose`` does) matrix by matrix;
- distances: ``x.dot(x)`` per cuboid, as ``np.linalg.norm`` computes them;
- everything else is element-wise IEEE arithmetic, which does not depend on how elements are grouped.

The float32 cast of a row is the cast the per-sample path makes of its staging array.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from latentds.render.scene import orbit_matrices, shift_x

_EYE = np.eye(4)


class Staged(NamedTuple):
    """One sample's values for ``DirectDraw.draw``: its float32 row (laid out as ``DirectDraw.f32``), its
    cuboids in draw order, and how many spot and point lights it uses."""

    row: np.ndarray
    order: list  # cuboid indices, farthest first (Renderer._sorted_mesh_nodes)
    n_spots: int
    n_points: int


def _rotations(cos: np.ndarray, sin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacks of rot_y, rot_z, rot_x (as ``scene.cuboid_poses`` writes them) from (B, 3) cosines and sines."""
    b = len(cos)
    rot_y, rot_z, rot_x = (np.broadcast_to(_EYE, (b, 4, 4)).copy() for _ in range(3))
    (cy, cz, cx), (sy, sz, sx) = cos.T, sin.T
    rot_y[:, 0, 0] = rot_y[:, 2, 2] = cy
    rot_y[:, 0, 2], rot_y[:, 2, 0] = sy, -sy
    rot_z[:, 0, 0] = rot_z[:, 1, 1] = cz
    rot_z[:, 0, 1], rot_z[:, 1, 0] = -sz, sz
    rot_x[:, 1, 1] = rot_x[:, 2, 2] = cx
    rot_x[:, 1, 2], rot_x[:, 2, 1] = -sx, sx
    return rot_y, rot_z, rot_x


def chain_poses(labels: list[dict]) -> np.ndarray:
    """(B, 4, 4, 4): the world pose of cuboid k of sample i at [i, k] (``scene.cuboid_poses``, batched). Past a
    sample's own cuboids: its chain continued with zero angles up to the batch's longest chain, zeros beyond. The
    cuboid length must be the same for the whole batch."""
    half = labels[0]["cuboid"]["length"] / 2
    b = len(labels)
    out = np.zeros((b, 4, 4, 4))  # zeros past a chain: no uninitialised memory reaches the maths below
    pose = np.broadcast_to(shift_x(-half), (b, 4, 4)).copy()
    out[:, 0] = pose
    n_joints = max(len(lab["joints"]) for lab in labels)
    if not n_joints:
        return out
    pad = [(0.0, 0.0, 0.0)] * n_joints
    angles = np.radians([([(joint["phi"], joint["theta"], joint["lambda"]) for joint in lab["joints"]]
                          + pad)[:n_joints] for lab in labels])
    cos, sin = np.cos(angles), np.sin(angles)
    shift = shift_x(half)
    for j in range(n_joints):
        rot_y, rot_z, rot_x = _rotations(cos[:, j], sin[:, j])
        pose = pose @ shift @ rot_y @ rot_z @ rot_x
        pose = pose @ shift
        out[:, j + 1] = pose
    return out


def stage(draw, labels: list[dict], size: int) -> list[Staged]:
    """The Staged values of each of ``labels`` for ``draw`` (a DirectDraw) at ``size`` px."""
    b = len(labels)
    rows = np.empty((b, len(draw.f64)))
    rows[:] = draw.f64  # the constants (material, segmentation colours) sit where DirectDraw put them

    # Cuboids: Scene.get_pose is np.dot(pose, I); base colours (alpha 1) of the cuboids each sample has.
    n_cuboids = [min(len(lab["joints"]) + 1, len(lab["colors"])) for lab in labels]  # frame_of's zip
    cuboids = np.matmul(chain_poses(labels), _EYE)
    for k, ((m, _), _, _) in enumerate(draw.cuboid_blocks):
        rows[:, m:m + 16] = cuboids[:, k].reshape(b, 16)
    which = [(i, k) for i, n in enumerate(n_cuboids) for k in range(n)]
    colours = np.ones((len(which), 4))
    colours[:, :3] = [labels[i]["colors"][k] for i, k in which]
    _scatter(rows, which, [block[1][0] for block in draw.cuboid_blocks], colours)

    # Lights and the camera: every orbit pose of the batch from one call, then np.dot(pose, I) for each.
    specs, spots, points = [], [], []  # spots, points: (sample, slot, index into specs)
    suns, cameras = [], []  # per sample: index into specs
    for i, lab in enumerate(labels):
        suns.append(len(specs))
        specs.append(lab["light"])
        for slot, spec in enumerate(lab["spot_lights"]):
            spots.append((i, slot, len(specs)))
            specs.append(spec)
        for slot, spec in enumerate(lab["point_lights"]):
            points.append((i, slot, len(specs)))
            specs.append(spec)
        cameras.append(len(specs))
        specs.append(lab["camera"])
    raw = orbit_matrices(specs)
    poses = np.matmul(raw, _EYE)

    v, p, cam, amb, sun = draw.V[0], draw.P[0], draw.cam_pos[0], draw.ambient[0], draw.sun_block[0]
    views = [draw.view(raw[c]) for c in cameras]
    rows[:, v:v + 16] = [view for view, _ in views]
    cam_loc = np.array([loc for _, loc in views])
    rows[:, cam:cam + 3] = cam_loc
    yfov = np.radians([lab["camera"]["yfov"] for lab in labels]).tolist()
    rows[:, p:p + 16] = [draw.projection(y, size) for y in yfov]
    rows[:, amb:amb + 3] = np.array([lab["ambient"] for lab in labels], dtype=float)[:, None]
    rows[:, sun:sun + 3] = -poses[suns, :3, 2]
    rows[:, sun + 3:sun + 6] = [lab["light"]["color"] for lab in labels]
    rows[:, sun + 6] = [lab["light"]["intensity"] for lab in labels]
    if spots:
        spec = [specs[j] for _, _, j in spots]
        at = [j for _, _, j in spots]
        values = np.empty((len(spots), 12))
        values[:, 0:3] = -poses[at, :3, 2]
        values[:, 3:6] = poses[at, :3, 3]
        # Renderer._bind_lighting's cone terms, in float64 as there
        cos_outer = np.cos([s["outer_cone"] for s in spec])
        values[:, 6] = scale = 1.0 / np.maximum(0.001, np.cos([s["inner_cone"] for s in spec]) - cos_outer)
        values[:, 7] = -cos_outer * scale
        values[:, 8:11] = [s["color"] for s in spec]
        values[:, 11] = [s["intensity"] for s in spec]
        _scatter(rows, spots, [block[0] for block in draw.spot_blocks], values)
    if points:
        spec = [specs[j] for _, _, j in points]
        values = np.empty((len(points), 7))
        values[:, 0:3] = poses[[j for _, _, j in points], :3, 3]
        values[:, 3:6] = [s["color"] for s in spec]
        values[:, 6] = [s["intensity"] for s in spec]
        _scatter(rows, points, [block[0] for block in draw.point_blocks], values)

    # Renderer._sorted_mesh_nodes: farthest first, a stable sort of the scene's (fixed) node order; the distance
    # as np.linalg.norm computes it: the square root of x.dot(x) (one BLAS ddot per cuboid, here through matmul).
    gaps = cuboids[:, :, :3, 3] - cam_loc[:, None, :]
    distances = (-np.sqrt(np.matmul(gaps[:, :, None, :], gaps[:, :, :, None]))).reshape(b, -1).tolist()
    rows32 = rows.astype(np.float32)
    n_spots = [len(lab["spot_lights"]) for lab in labels]
    n_points = [len(lab["point_lights"]) for lab in labels]
    return [Staged(rows32[i], sorted(range(n_cuboids[i]), key=distances[i].__getitem__), n_spots[i], n_points[i])
            for i in range(b)]


def _scatter(rows: np.ndarray, where: list[tuple], offsets: list[int], values: np.ndarray) -> None:
    """rows[i, offsets[slot] + j] = values[n, j] for each (i, slot, ...) = where[n]."""
    i = np.array([w[0] for w in where])[:, None]
    at = np.array(offsets)[[w[1] for w in where]][:, None] + np.arange(values.shape[1])
    rows[i, at] = values
