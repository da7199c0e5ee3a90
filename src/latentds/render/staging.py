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

import math
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
    """(B, 4, 4, 4): the world pose of cuboid k of sample i at [i, k] (``scene.cuboid_poses``, batched); entries
    past a sample's own cuboids are not meaningful. The cuboid length must be the same for the whole batch."""
    half = labels[0]["cuboid"]["length"] / 2
    b = len(labels)
    out = np.empty((b, 4, 4, 4))
    pose = np.broadcast_to(shift_x(-half), (b, 4, 4)).copy()
    out[:, 0] = pose
    n_joints = max(len(lab["joints"]) for lab in labels)
    if not n_joints:
        return out
    angles = np.zeros((b, n_joints, 3))
    for i, lab in enumerate(labels):
        for j, joint in enumerate(lab["joints"]):
            angles[i, j] = joint["phi"], joint["theta"], joint["lambda"]
    angles = np.radians(angles)
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

    # Cuboids: Scene.get_pose is np.dot(pose, I).
    n_cuboids = [min(len(lab["joints"]) + 1, len(lab["colors"])) for lab in labels]  # frame_of's zip
    cuboids = np.matmul(chain_poses(labels), _EYE)
    for k, ((m, _), _, _) in enumerate(draw.cuboid_blocks):
        rows[:, m:m + 16] = cuboids[:, k].reshape(b, 16)
    for i, lab in enumerate(labels):
        for k, color in enumerate(lab["colors"][:n_cuboids[i]]):
            c = draw.cuboid_blocks[k][1][0]
            rows[i, c:c + 3] = color
            rows[i, c + 3] = 1.0

    # Lights and the camera: every orbit pose of the batch from one call, then np.dot(pose, I) for each.
    specs, spans = [], []
    for lab in labels:
        start = len(specs)
        specs.append(lab["light"])
        specs.extend(lab["spot_lights"])
        specs.extend(lab["point_lights"])
        specs.append(lab["camera"])
        spans.append((start, len(lab["spot_lights"]), len(lab["point_lights"])))
    raw = orbit_matrices(specs)
    poses = np.matmul(raw, _EYE)

    spots = [spot for lab in labels for spot in lab["spot_lights"]]
    if spots:  # Renderer._bind_lighting's cone terms, in float64 as there
        cos_inner = np.cos(np.array([s["inner_cone"] for s in spots]))
        cos_outer = np.cos(np.array([s["outer_cone"] for s in spots]))
        scale = 1.0 / np.maximum(0.001, cos_inner - cos_outer)
        offset = -cos_outer * scale

    v, p, cam, amb = draw.V[0], draw.P[0], draw.cam_pos[0], draw.ambient[0]
    sun = draw.sun_block[0]
    out, n_spot = [], 0
    for i, lab in enumerate(labels):
        start, n_s, n_p = spans[i]
        row = rows[i]
        view, cam_loc = draw.view(raw[start + 1 + n_s + n_p])
        row[v:v + 16] = view
        row[p:p + 16] = draw.projection(float(np.radians(lab["camera"]["yfov"])), size)
        row[cam:cam + 3] = cam_loc
        row[amb:amb + 3] = lab["ambient"]
        light, pose = lab["light"], poses[start]
        row[sun:sun + 3] = -pose[:3, 2]
        row[sun + 3:sun + 6] = light["color"]
        row[sun + 6] = light["intensity"]
        for s in range(n_s):
            o, pose, light = draw.spot_blocks[s][0], poses[start + 1 + s], lab["spot_lights"][s]
            row[o:o + 3] = -pose[:3, 2]
            row[o + 3:o + 6] = pose[:3, 3]
            row[o + 6] = scale[n_spot]
            row[o + 7] = offset[n_spot]
            row[o + 8:o + 11] = light["color"]
            row[o + 11] = light["intensity"]
            n_spot += 1
        for q in range(n_p):
            o, pose, light = draw.point_blocks[q][0], poses[start + 1 + n_s + q], lab["point_lights"][q]
            row[o:o + 3] = pose[:3, 3]
            row[o + 3:o + 6] = light["color"]
            row[o + 6] = light["intensity"]
        # Renderer._sorted_mesh_nodes: farthest first, a stable sort of the scene's (fixed) node order; the
        # distance as np.linalg.norm computes it (sqrt of x.dot(x), correctly rounded either way).
        gaps = cuboids[i, :n_cuboids[i], :3, 3] - cam_loc
        distances = [-math.sqrt(g.dot(g)) for g in gaps]
        out.append((row, sorted(range(n_cuboids[i]), key=distances.__getitem__), n_s, n_p))
    rows32 = rows.astype(np.float32)
    return [Staged(rows32[i], order, n_s, n_p) for i, (_, order, n_s, n_p) in enumerate(out)]
