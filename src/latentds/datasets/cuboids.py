"""Cuboid shard helpers: a fixed-length factor vector per sample, and the groups of a ``--sequence`` render.

The factor vector has one entry per scalar factor of the render's factor table, colours split into r/g/b
(``FACTOR_NAMES``). A factor the sample lacks (the joints and colours past a shorter chain's end)
is masked out: its value is 0 *and* its mask entry False, so no model mistakes it for a real 0.
"""

from __future__ import annotations

import numpy as np

from latentds.render.factors import FACTORS, MAX_JOINTS


def _names() -> tuple[str, ...]:
    names = []
    for f in FACTORS:
        names += [f"{f.name}_{c}" for c in "rgb"] if f.type == "rgb" else [f.name]
    return tuple(names)


FACTOR_NAMES: tuple[str, ...] = _names()
_LIGHT = FACTOR_NAMES.index("light_azimuth")
assert FACTOR_NAMES[_LIGHT:] == ("light_azimuth", "light_elevation", "light_intensity", "light_color_r",
                                 "light_color_g", "light_color_b", "n_spot_lights", "n_point_lights")


def cuboid_factors(labels: dict) -> tuple[np.ndarray, np.ndarray]:
    """(values float32[len(FACTOR_NAMES)], present bool[len(FACTOR_NAMES)]) of a cuboid sample's labels.

    Written out rather than looped over ``factor_value``: it runs once per streamed sample.
    """
    values = np.zeros(len(FACTOR_NAMES), dtype=np.float32)
    present = np.zeros(len(FACTOR_NAMES), dtype=bool)
    values[0], present[0] = labels["n_cuboids"], True
    for j, joint in enumerate(labels["joints"]):
        values[1 + 3 * j: 4 + 3 * j] = joint["phi"], joint["theta"], joint["lambda"]
        present[1 + 3 * j: 4 + 3 * j] = True
    start = 1 + 3 * MAX_JOINTS
    for k, color in enumerate(labels["colors"]):
        values[start + 3 * k: start + 3 * k + 3] = color
        present[start + 3 * k: start + 3 * k + 3] = True
    light = labels["light"]
    values[_LIGHT:] = (light["azimuth"], light["elevation"], light["intensity"], *light["color"],
                       len(labels["spot_lights"]), len(labels["point_lights"]))
    present[_LIGHT:] = True
    return values, present


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
