"""The factor space of the cuboid chain: presets, per-sample sampling, sequences, identities.

``sample_labels(preset, seed, index, size)`` gives the labels of sample ``index``, a plain JSON dict holding
everything needed to re-render it exactly. The layout of that dict, and how its random draws depend only on
``(seed, index)`` (and on ``(seed, identity)`` with identities), are written once, in ARCHITECTURE.md, "Shard
sets" and "Determinism"; the presets' ranges are described in docs/render.md, "The factors".
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from latentds.errors import InvalidParameterError

MAX_CUBOIDS = 4
MAX_JOINTS = MAX_CUBOIDS - 1
MAX_SPOT_LIGHTS = 4  # pyrender's MAX_N_LIGHTS per light type
MAX_POINT_LIGHTS = 4

# Equal cuboids, long axis x; the cross-section (height along y, width along z) is not square so twist shows.
CUBOID = {"length": 1.0, "height": 0.3, "width": 0.55}
AMBIENT = 0.08

# Joint angle ranges in degrees. Phi stops short of folding the child back into its parent; a rectangular
# cross-section looks the same after a half turn, so Lambda spans half a turn.
ANGLES = {"phi": (-135.0, 135.0), "theta": (-60.0, 60.0), "lambda": (-90.0, 90.0)}

PHI_PRESET_THETA = 10.0

# Streams keep plain samples, sequence groups and identities from sharing draws. _IDENTITY draws an identity's
# chain from (seed, identity); _IDENTITY_OF draws which identity a sample (or a sequence group) shows.
_PLAIN, _SEQUENCE = 0, 1
_IDENTITY, _IDENTITY_OF = 2, 3
_SWEEP = 4  # a sequence group's random end points (sweep="random")
SWEEPS = ("random",)
MIN_SWEEP = 0.25  # random end points lie at least this fraction of the range apart
MIN_IDENTITIES, MAX_IDENTITIES = 2, 1_000_000


@dataclass(frozen=True)
class Factor:
    """One row of the factor table recorded in every manifest."""

    name: str
    type: str  # "int", "float" or "rgb"
    low: float
    high: float
    unit: str
    path: str  # where it lives in a sample's JSON
    description: str

    def as_json(self, varies: bool) -> dict:
        return {"name": self.name, "type": self.type, "range": [self.low, self.high], "unit": self.unit,
                "path": self.path, "varies": varies, "description": self.description}


def _factor_table() -> tuple[Factor, ...]:
    rows = [Factor("n_cuboids", "int", 2, MAX_CUBOIDS, "", "n_cuboids", "number of cuboids in the chain")]
    what = {"phi": "rotation of cuboid {c} about cuboid {p}'s vertical axis (horizontal articulation)",
            "theta": "elevation of cuboid {c} about cuboid {p}'s lateral axis",
            "lambda": "twist of cuboid {c} about its own long axis"}
    for j in range(MAX_JOINTS):
        for angle, (lo, hi) in ANGLES.items():
            rows.append(Factor(f"{angle}_{j}", "float", lo, hi, "deg", f"joints[{j}].{angle}",
                               what[angle].format(p=j, c=j + 1)))
    for k in range(MAX_CUBOIDS):
        rows.append(Factor(f"color_{k}", "rgb", 0.0, 1.0, "", f"colors[{k}]", f"base colour of cuboid {k}"))
    rows += [
        Factor("light_azimuth", "float", 0.0, 360.0, "deg", "light.azimuth", "directional light: azimuth"),
        Factor("light_elevation", "float", 20.0, 85.0, "deg", "light.elevation", "directional light: elevation"),
        Factor("light_intensity", "float", 1.5, 4.5, "", "light.intensity", "directional light: intensity"),
        Factor("light_color", "rgb", 0.7, 1.0, "", "light.color", "directional light: colour"),
        Factor("n_spot_lights", "int", 0, MAX_SPOT_LIGHTS, "", "len(spot_lights)",
               "spot lights, each aimed at the chain with random azimuth, elevation, distance, colour, "
               "intensity and cone angles"),
        Factor("n_point_lights", "int", 0, MAX_POINT_LIGHTS, "", "len(point_lights)",
               "point lights, each with random azimuth, elevation, distance, colour and intensity"),
    ]
    return tuple(rows)


FACTORS: tuple[Factor, ...] = _factor_table()
FACTORS_BY_NAME = {f.name: f for f in FACTORS}
# Factors a --sequence may sweep: the scalar, continuous ones.
SEQUENCE_FACTORS = tuple(f.name for f in FACTORS if f.type == "float")


def _rgb(hue: float, sat: float, val: float) -> list[float]:
    return [float(c) for c in colorsys.hsv_to_rgb(hue, sat, val)]


def _get(labels: dict, name: str) -> float:
    if name.startswith(tuple(ANGLES)):
        angle, j = name.rsplit("_", 1)
        return labels["joints"][int(j)][angle]
    return labels["light"][name.removeprefix("light_")]


def _set(labels: dict, name: str, value: float) -> None:
    if name.startswith(tuple(ANGLES)):
        angle, j = name.rsplit("_", 1)
        labels["joints"][int(j)][angle] = value
    else:
        labels["light"][name.removeprefix("light_")] = value


def set_factor(labels: dict, name: str, value: float) -> dict:
    """``labels`` (from sample_labels; changed in place and returned) with sequence-able factor ``name`` set to
    ``value``.

    Setting an angle of a joint j the chain lacks first lengthens the chain to j + 2 cuboids, and the new joints'
    angles and the new cuboids' colours are the sample's own draws from its preset -- the values the sample would
    have had with that many cuboids (every sample draws all MAX_JOINTS joints and MAX_CUBOIDS colours; with
    identities, the colours are its identity's). They are drawn again from the sample's ``(seed, index)`` (or
    sequence group), so the result is deterministic. The phi preset draws a single joint: it has no joint 1 or 2.
    """
    if name not in SEQUENCE_FACTORS:
        raise InvalidParameterError(f"cannot set factor {name!r}; settable: {', '.join(SEQUENCE_FACTORS)}")
    if name.startswith(tuple(ANGLES)):
        j = int(name.rsplit("_", 1)[1])
        if len(labels["joints"]) <= j:
            joints, colors = _drawn_chain(labels)
            if len(joints) <= j:
                raise InvalidParameterError(f"cannot set {name}: preset {labels['preset']!r} draws only "
                                            f"{len(joints)} joint(s)")
            n = j + 2
            labels["joints"] = labels["joints"] + [dict(joint) for joint in joints[len(labels["joints"]):n - 1]]
            labels["colors"] = labels["colors"] + [list(color) for color in colors[len(labels["colors"]):n]]
            labels["n_cuboids"] = n
    _set(labels, name, value)
    return labels


def _drawn_chain(labels: dict) -> tuple[list[dict], list[list[float]]]:
    """Every joint and colour a sample's preset drew for it (before sample_labels trimmed them to its chain), from
    its labels: the same generator as in sample_labels, re-seeded from ``(seed, stream, index or group)``."""
    try:
        preset, seed, sequence = labels["preset"], labels["seed"], labels["sequence"]
        stream, draw = (_PLAIN, labels["index"]) if sequence is None else (_SEQUENCE, sequence["group"])
    except (KeyError, TypeError):
        raise InvalidParameterError("labels must come from sample_labels (with preset, seed, index and sequence) "
                                    "to lengthen their chain") from None
    chain = PRESETS[preset].sample(np.random.default_rng([seed, stream, draw]))
    colors = identity_chain(labels.get("identity_seed", seed), labels["identity"])[1] if "identity" in labels \
        else chain["colors"]
    return chain["joints"], colors


@dataclass(frozen=True)
class Preset:
    """A named region of the factor space with its camera and default size."""

    name: str
    default_n: int
    camera: dict
    varies: tuple[str, ...]
    description: str

    def sample(self, rng: np.random.Generator) -> dict:
        return _PRESET_SAMPLERS[self.name](rng)


def _sample_phi(rng: np.random.Generator) -> dict:
    lo, hi = ANGLES["phi"]
    return {
        "n_cuboids": 2,
        # A slight fixed lift keeps the two top faces from being coplanar where the cuboids overlap at the joint
        # (coplanar faces z-fight: pixels flicker between the cuboids from one Phi to the next).
        "joints": [{"phi": float(rng.uniform(lo, hi)), "theta": PHI_PRESET_THETA, "lambda": 0.0}],
        "colors": [_rgb(0.02, 0.75, 0.9), _rgb(0.6, 0.7, 0.9)],
        "light": {"azimuth": 40.0, "elevation": 60.0, "color": [1.0, 1.0, 1.0], "intensity": 3.0},
        "spot_lights": [],
        "point_lights": [],
        "camera": dict(PRESETS["phi"].camera),
    }


def _draw_table() -> tuple[np.ndarray, np.ndarray]:
    """(low, high - low) of each of a varied sample's uniform draws, in draw order; the three integer draws
    (cuboid, spot and point light counts) have (0, 0) and are read from the raw draw instead."""
    f = FACTORS_BY_NAME
    rows: list[tuple[float, float]] = [(0.0, 0.0)]  # n_cuboids
    for _ in range(MAX_JOINTS):
        rows += ANGLES.values()
    rows += [(0.0, 1.0), (0.45, 1.0), (0.55, 1.0)] * MAX_CUBOIDS  # hue, saturation, value of each colour
    rows += [(f[n].low, f[n].high) for n in ("light_azimuth", "light_elevation")]
    rows += [(f["light_color"].low, f["light_color"].high)] * 3 + [(f["light_intensity"].low, f["light_intensity"].high)]
    rows.append((0.0, 0.0))  # n_spot
    # each spot: inner cone, azimuth, elevation, distance, colour (3), intensity, outer cone - inner cone
    rows += [(0.05, 0.25), (0.0, 360.0), (15.0, 80.0), (4.0, 7.0), *[(0.3, 1.0)] * 3, (20.0, 80.0),
             (0.1, 0.35)] * MAX_SPOT_LIGHTS
    rows.append((0.0, 0.0))  # n_point
    # each point light: azimuth, elevation, distance, colour (3), intensity
    rows += [(0.0, 360.0), (-10.0, 80.0), (2.5, 6.0), *[(0.3, 1.0)] * 3, (5.0, 40.0)] * MAX_POINT_LIGHTS
    return np.array([lo for lo, _ in rows]), np.array([hi - lo for lo, hi in rows])


_LOW, _SPAN = _draw_table()
_DRAWS = len(_LOW)
_COLORS = 1 + 3 * MAX_JOINTS
_LIGHT = _COLORS + 3 * MAX_CUBOIDS
_N_SPOT = _LIGHT + 6
_N_POINT = _N_SPOT + 1 + 9 * MAX_SPOT_LIGHTS
assert _N_POINT + 1 + 7 * MAX_POINT_LIGHTS == _DRAWS


def _count(u: float, lo: int, hi: int) -> int:
    """A uniform integer lo..hi (inclusive) from one uniform draw u in [0, 1)."""
    return min(hi, lo + int(u * (hi - lo + 1)))


def _sample_varied(rng: np.random.Generator) -> dict:
    """All _DRAWS uniform draws in one numpy call, each mapped to its factor's range as ``low + span * u`` (the
    same arithmetic, rounded the same, as one Python expression per draw), then read off in a fixed order: every
    draw is made whether or not the sample uses it (a 2-cuboid chain still draws joints 1 and 2)."""
    raw = rng.random(_DRAWS)
    v, u = (_LOW + _SPAN * raw).tolist(), raw.tolist()
    joints = [{"phi": v[i], "theta": v[i + 1], "lambda": v[i + 2]} for i in range(1, _COLORS, 3)]
    colors = [_rgb(v[i], v[i + 1], v[i + 2]) for i in range(_COLORS, _LIGHT, 3)]
    spots = [{"azimuth": v[i + 1], "elevation": v[i + 2], "distance": v[i + 3], "color": v[i + 4:i + 7],
              "intensity": v[i + 7], "inner_cone": v[i], "outer_cone": v[i] + v[i + 8]}
             for i in range(_N_SPOT + 1, _N_SPOT + 1 + 9 * _count(u[_N_SPOT], 0, MAX_SPOT_LIGHTS), 9)]
    points = [{"azimuth": v[i], "elevation": v[i + 1], "distance": v[i + 2], "color": v[i + 3:i + 6],
               "intensity": v[i + 6]}
              for i in range(_N_POINT + 1, _N_POINT + 1 + 7 * _count(u[_N_POINT], 0, MAX_POINT_LIGHTS), 7)]
    return {
        "n_cuboids": _count(u[0], 2, MAX_CUBOIDS),
        "joints": joints,  # trimmed to n_cuboids - 1 by sample_labels, after a sequence may have raised it
        "colors": colors,
        "light": {"azimuth": v[_LIGHT], "elevation": v[_LIGHT + 1], "color": v[_LIGHT + 2:_LIGHT + 5],
                  "intensity": v[_LIGHT + 5]},
        "spot_lights": spots,
        "point_lights": points,
        "camera": dict(PRESETS["varied"].camera),
    }


_PRESET_SAMPLERS = {"phi": _sample_phi, "varied": _sample_varied}

# Joint 0 sits at the origin: cuboid 0 lies along -x, the rest of the chain reaches out at most 3 lengths.
PRESETS: dict[str, Preset] = {
    "phi": Preset("phi", 10_000,
                  {"azimuth": 20.0, "elevation": 40.0, "distance": 3.4, "yfov": 45.0, "target": [0.0, 0.0, 0.0]},
                  ("phi_0",),
                  "2 cuboids; only Phi of the single joint varies, uniformly over its range; all else fixed"),
    "varied": Preset("varied", 500_000,
                     {"azimuth": 20.0, "elevation": 35.0, "distance": 7.2, "yfov": 45.0, "target": [0.3, 0.0, 0.0]},
                     tuple(f.name for f in FACTORS),
                     "2-4 cuboids; all joint angles, colours and lights (1 directional, 0-4 spot, 0-4 point) vary"),
}


def sequence_factors(sequence) -> tuple[str, ...]:
    """The factors of a --sequence, in group order: "phi_0,theta_0" (or a RenderSpec) -> ("phi_0", "theta_0");
    None -> (). Group g of the render moves the (g mod len)-th."""
    if sequence is not None and not isinstance(sequence, str):
        sequence = sequence.sequence
    return () if sequence is None else tuple(name.strip() for name in sequence.split(","))


def check_sequence(preset: str, sequence: str | None, steps: int | None) -> None:
    """Raise InvalidParameterError unless (sequence, steps) is a valid sequence for the preset; ``sequence`` is
    one factor or several, comma-separated."""
    if sequence is None:
        if steps is not None:
            raise InvalidParameterError("--steps needs --sequence FACTOR; add --sequence or drop --steps")
        return
    allowed = [f for f in SEQUENCE_FACTORS if f in PRESETS[preset].varies]
    factors = sequence_factors(sequence)
    for i, factor in enumerate(factors):
        if factor not in allowed:
            raise InvalidParameterError(
                f"unknown --sequence factor {factor!r} for preset {preset!r}; choose one of: {', '.join(allowed)}")
        if factor in factors[:i]:
            raise InvalidParameterError(f"--sequence names {factor!r} twice; name each factor once")
    if steps is None:
        raise InvalidParameterError("--sequence needs --steps, the images per sequence (at least 2)")
    if steps < 2:
        raise InvalidParameterError(f"--steps must be at least 2 for a sequence (got {steps})")


def check_sweep(sequence: str | None, sweep: str | None) -> None:
    """Raise InvalidParameterError unless ``sweep`` is None or one of SWEEPS with a sequence."""
    if sweep is None:
        return
    if sweep not in SWEEPS:
        raise InvalidParameterError(f"--sweep must be one of: {', '.join(SWEEPS)} (got {sweep!r})")
    if sequence is None:
        raise InvalidParameterError("--sweep needs --sequence FACTOR --steps K; add them or drop --sweep")


def check_identities(preset: str, identities: int | None, identity_seed: int | None = None) -> None:
    """Raise InvalidParameterError unless ``identities`` is None or a valid identity count for the preset (and
    ``identity_seed``, if given, a seed with identities)."""
    if identity_seed is not None:
        if identities is None:
            raise InvalidParameterError("--identity-seed needs --identities K; add it or drop --identity-seed")
        if isinstance(identity_seed, bool) or not isinstance(identity_seed, int) or identity_seed < 0:
            raise InvalidParameterError(f"--identity-seed must be a whole number of 0 or more (got {identity_seed})")
    if identities is None:
        return
    if preset != "varied":
        raise InvalidParameterError(f"--identities needs --varied (preset {preset!r} has one fixed chain); "
                                    "add --varied or drop --identities")
    if isinstance(identities, bool) or not isinstance(identities, int) or \
            not MIN_IDENTITIES <= identities <= MAX_IDENTITIES:
        raise InvalidParameterError(f"--identities must be a whole number from {MIN_IDENTITIES} to "
                                    f"{MAX_IDENTITIES:,} (got {identities})")


def identity_chain(seed: int, identity: int) -> tuple[int, list[list[float]]]:
    """(n_cuboids, colours of all MAX_CUBOIDS cuboids) of ``identity``: those of a varied sample drawn from
    ``(seed, identity)``, so identities are spread over the chains exactly as plain varied samples are."""
    chain = _sample_varied(np.random.default_rng([seed, _IDENTITY, identity]))
    return chain["n_cuboids"], chain["colors"]


def sample_labels(preset: str, seed: int, index: int, size: int,
                  sequence: str | None = None, steps: int | None = None, identities: int | None = None,
                  sweep: str | None = None, identity_seed: int | None = None) -> dict:
    """The labels (factors and settings) of sample ``index`` of a render; a plain JSON-able dict.

    With ``sequence`` (one factor or several, comma-separated), samples come in groups of ``steps``: within group
    g everything is drawn once from ``(seed, g)`` and only the factor ``sequence_factors(sequence)[g % len]``
    moves linearly from the low to the high end of its range; with ``sweep="random"`` between two end points drawn
    from ``(seed, g)``, at least MIN_SWEEP of the range apart (recorded as the sequence's "from" and "to").

    With ``identities=K`` (varied preset) the sample shows identity k (0..K-1, drawn from ``(seed, index)``, or
    ``(seed, g)`` for a whole sequence group): the cuboid count and colours are identity k's (identity_chain),
    the rest is the sample's own. A sequence sweeping joint j still lengthens a shorter chain to j + 2 cuboids.
    ``identity_seed`` draws the identities' chains from ``(identity_seed, k)`` instead of ``(seed, k)``: new
    images (poses, lights, which identity) of another render's identities, e.g. a held-out twin of a training set.
    """
    p = PRESETS[preset]
    if sequence is None:
        stream, draw = _PLAIN, index
        seq = None
    else:
        group, step = divmod(index, steps)
        factors = sequence_factors(sequence)
        factor = factors[group % len(factors)]
        stream, draw = _SEQUENCE, group
        seq = {"factor": factor, "group": group, "step": step, "steps": steps}
    labels = p.sample(np.random.default_rng([seed, stream, draw]))
    identity = None
    if identities is not None:
        check_identities(preset, identities)
        identity = int(np.random.default_rng([seed, _IDENTITY_OF, stream, draw]).integers(identities))
        labels["n_cuboids"], labels["colors"] = identity_chain(seed if identity_seed is None else identity_seed,
                                                               identity)
    if seq is not None:
        if factor.startswith(tuple(ANGLES)):  # the swept joint must exist in this group's chain
            labels["n_cuboids"] = max(labels["n_cuboids"], int(factor.rsplit("_", 1)[1]) + 2)
        f = FACTORS_BY_NAME[factor]
        start, end = 0.0, 1.0
        if sweep == "random":
            rng = np.random.default_rng([seed, _SWEEP, group])
            start, end = (float(v) for v in rng.uniform(0, 1, 2))
            while abs(end - start) < MIN_SWEEP:
                start, end = (float(v) for v in rng.uniform(0, 1, 2))
            seq["from"], seq["to"] = f.low + (f.high - f.low) * start, f.low + (f.high - f.low) * end
        _set(labels, factor, f.low + (f.high - f.low) * (start + (end - start) * step / (steps - 1)))
    n = labels["n_cuboids"]
    labels["joints"] = labels["joints"][: n - 1]
    labels["colors"] = labels["colors"][:n]
    out = {"key": sample_key(index), "index": index, "seed": seed, "preset": preset, "size": size,
           **labels, "cuboid": dict(CUBOID), "ambient": AMBIENT, "sequence": seq}
    if identity is not None:  # added only when used, so renders without identities keep their exact bytes
        out["identity"] = identity
        if identity_seed is not None:
            out["identity_seed"] = identity_seed
    return out


def factor_value(labels: dict, name: str):
    """The value of factor ``name`` (a FACTORS name) in a sample's labels, or None if the sample lacks it."""
    if name == "n_cuboids":
        return labels["n_cuboids"]
    if name == "n_spot_lights":
        return len(labels["spot_lights"])
    if name == "n_point_lights":
        return len(labels["point_lights"])
    if name.startswith("color_"):
        k = int(name.rsplit("_", 1)[1])
        return labels["colors"][k] if k < len(labels["colors"]) else None
    if name.startswith(tuple(ANGLES)):
        j = int(name.rsplit("_", 1)[1])
        return _get(labels, name) if j < len(labels["joints"]) else None
    return _get(labels, name) if name != "light_color" else labels["light"]["color"]


def sample_key(index: int) -> str:
    """The WebDataset key of a sample: its zero-padded global index (no dots, fixed width)."""
    return f"{index:09d}"
