"""Cuboid shard helpers: a fixed-length factor vector per sample, and the groups of a ``--sequence`` render.

The factor vector has one entry per scalar factor of the render's factor table, colours split into r/g/b
(``FACTOR_NAMES``). A factor the sample lacks (the joints and colours past a shorter chain's end)
is masked out: its value is 0 *and* its mask entry False, so no model mistakes it for a real 0.
"""

from __future__ import annotations

import numpy as np

from latentds.render.factors import FACTORS, MAX_CUBOIDS, MAX_JOINTS


def _names() -> tuple[str, ...]:
    names = []
    for f in FACTORS:
        names += [f"{f.name}_{c}" for c in "rgb"] if f.type == "rgb" else [f.name]
    return tuple(names)


FACTOR_NAMES: tuple[str, ...] = _names()
# cuboid_factors writes the vector out in this order; keep them in step.
assert FACTOR_NAMES[-8:] == ("light_azimuth", "light_elevation", "light_intensity", "light_color_r",
                                 "light_color_g", "light_color_b", "n_spot_lights", "n_point_lights")


def cuboid_factors(labels: dict) -> tuple[np.ndarray, np.ndarray]:
    """(values float32[len(FACTOR_NAMES)], present bool[len(FACTOR_NAMES)]) of a cuboid sample's labels.

    Written out as flat lists rather than looped over ``factor_value``: it runs once per streamed sample.
    """
    joints, colors, light = labels["joints"], labels["colors"], labels["light"]
    missing_joints, missing_colors = MAX_JOINTS - len(joints), MAX_CUBOIDS - len(colors)
    values = [labels["n_cuboids"]]
    for joint in joints:
        values += (joint["phi"], joint["theta"], joint["lambda"])
    values += [0.0] * (3 * missing_joints)
    for color in colors:
        values += color
    values += [0.0] * (3 * missing_colors)
    values += (light["azimuth"], light["elevation"], light["intensity"], *light["color"],
               len(labels["spot_lights"]), len(labels["point_lights"]))
    present = ([True] * (1 + 3 * len(joints)) + [False] * (3 * missing_joints) + [True] * (3 * len(colors))
               + [False] * (3 * missing_colors) + [True] * 8)
    return np.array(values, dtype=np.float32), np.array(present, dtype=bool)


def factor_table(manifest: dict) -> list[dict]:
    """The factor table of a shard set's manifest, expanded like FACTOR_NAMES (one row per vector entry)."""
    rows = []
    for f in manifest.get("factors", []):
        if f["type"] == "rgb":
            rows += [dict(f, name=f"{f['name']}_{c}", type="float") for c in "rgb"]
        else:
            rows.append(dict(f))
    return rows


def is_cuboid_labels(labels: dict) -> bool:
    return "joints" in labels and "n_cuboids" in labels
