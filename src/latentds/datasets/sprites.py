"""2D Sprites (Reed et al. 2015): 672 game characters, each drawn in 21 animations; one sample per frame."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from PIL import Image

from latentds.datasets.public import PublicDataset, factor_row
from latentds.errors import DatasetLayoutError

ATTRIBUTES = ("body", "sex", "hair", "armor", "arm", "greaves", "weapon")  # order of the (7, 1) `labels` array
ACTIONS = ("spellcast", "thrust", "walk", "slash", "shoot")
VIEWS = ("back", "left", "front", "right")
# The 21 cells of `sprites`: each action in the four views, then "hurt", which is drawn from the front only.
ANIMATIONS = tuple((action, view) for action in ACTIONS for view in VIEWS) + (("hurt", "front"),)
SIDE = 60
FRAME_SIZE = SIDE * SIDE * 3
# Frames of one animation: the real data has at most 13; a file declaring more (10^6 frames would be an 80 GiB
# array once read) is refused before anything is allocated.
MAX_FRAMES = 256
# Deflate shrinks data at most ~1032:1, so an animation stored in fewer bytes than its declared size / this holds
# less data than it declares (an unwritten, sparse dataset); refused likewise.
MAX_STORAGE_RATIO = 1100


class Sprites(PublicDataset, name="sprites"):
    """The 2D Sprites frames of one split.

    ``root`` is the ``data/sprites`` directory of ``nips2015-analogy-data.tar.gz`` (holding ``sprites_0.mat`` …
    ``sprites_671.mat`` and ``sprites_splits.mat``); the directory that contains ``data/sprites`` works too.
    Sample i is one 60×60 frame; labels: ``identity`` (character index 0–671, the number in the file name),
    the 7 attributes by name, ``animation`` (e.g. "spellcast"), ``view`` ("back", "left", "front", "right") and
    ``frame`` (0-based within the animation). Samples are ordered by (identity, animation cell, frame).
    """

    root_help = "data/sprites of nips2015-analogy-data.tar.gz (sprites_*.mat, sprites_splits.mat)"

    splits = ("train", "val", "test")
    description = (
        "2D Sprites (Reed, Zhang, Zhang and Lee, NeurIPS 2015): 60x60 RGB frames of 672 game characters from the "
        "Liberated Pixel Cup sprite sheets, split 500/72/100 by character. Each character is a combination of 7 "
        "attributes (body, sex, hair, armor, arm, greaves, weapon; integer codes as stored in the .mat files) and "
        "is drawn in 21 animations (spellcast, thrust, walk, slash, shoot in the back, left, front and right "
        "views, plus hurt from the front), 178 frames per character. Labels: identity (character index 0-671), "
        "the 7 attribute codes, animation, view and frame number. Source: nips2015-analogy-data.tar.gz from "
        "http://www.scottreed.info/ (data/sprites)."
    )
    citation = (
        "@inproceedings{reed2015deep,\n"
        "  title={Deep Visual Analogy-Making},\n"
        "  author={Reed, Scott E and Zhang, Yi and Zhang, Yuting and Lee, Honglak},\n"
        "  booktitle={Advances in Neural Information Processing Systems},\n"
        "  year={2015}\n"
        "}"
    )

    def __init__(self, root: str | os.PathLike, split: str | None = None):
        super().__init__(root, split)
        nested = self.root / "data" / "sprites"
        self.folder = nested if (nested / "sprites_splits.mat").exists() else self.root
        characters = read_split(self.require(self.folder / "sprites_splits.mat", "the split file sprites_splits.mat"),
                                self.split)
        self.attributes: dict[int, dict[str, int]] = {}
        self.index: list[tuple[int, int, int]] = []  # (identity, animation cell, frame)
        for identity in characters:
            path = self.require(self.character_path(identity), f"character file sprites_{identity}.mat")
            attributes, frame_counts = read_character_shapes(path)
            self.attributes[identity] = attributes
            self.index += [(identity, cell, t) for cell, count in enumerate(frame_counts) for t in range(count)]
        self._cached: tuple[tuple[int, int], np.ndarray] | None = None

    def character_path(self, identity: int) -> Path:
        return self.folder / f"sprites_{identity}.mat"

    def factor_table(self) -> list[dict]:
        """The 7 appearance codes (range: what this split's characters use) and the frame within an animation.
        The action and the view are strings in the labels, so they are not in the factor vector."""
        rows = []
        for name in ATTRIBUTES:
            codes = [attributes[name] for attributes in self.attributes.values()] or [0]
            rows.append(factor_row(name, min(codes), max(codes), f"the character's {name} (a code of the sheet)"))
        frames = [t for _, _, t in self.index] or [0]
        return rows + [factor_row("frame", 0, max(frames), "the frame within its animation (0 = first)")]

    def __len__(self) -> int:
        return len(self.index)

    def source_file(self, index: int):
        return self.character_path(self.index[index][0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        identity, cell, t = self.index[index]
        column_major = self.animation(identity, cell)[t].reshape((SIDE, SIDE, 3), order="F")
        pixels = np.clip(np.rint(column_major * 255), 0, 255).astype(np.uint8)
        action, view = ANIMATIONS[cell]
        labels = {"identity": identity, **self.attributes[identity], "animation": action, "view": view, "frame": t}
        return {"key": f"sprites_{identity:03d}_{action}_{view}_{t:02d}", "image": Image.fromarray(pixels),
                "labels": labels}

    def animation(self, identity: int, cell: int) -> np.ndarray:
        """All frames (T, 10800) of one animation; the last one read is kept, as samples come in file order."""
        cached = self._cached  # one read of the attribute, so a thread never mixes two animations
        if cached is None or cached[0] != (identity, cell):
            with h5py.File(self.character_path(identity), "r") as f:
                cached = self._cached = ((identity, cell), f[f["sprites"][cell, 0]][()])
        return cached[1]

    def __getstate__(self):
        # The cached animation is per process and cheap to re-read; DataLoader workers need not carry it.
        return {**self.__dict__, "_cached": None}


def read_split(path: Path, split: str) -> list[int]:
    """Sorted 0-based character indices of ``split`` from ``sprites_splits.mat`` (which stores them 1-based)."""
    from scipy.io import loadmat  # noqa: PLC0415  (scipy.io takes ~0.3 s to import; only needed here)

    name = {"train": "trainidx", "val": "validx", "test": "testidx"}[split]
    try:
        table = loadmat(path)
    except Exception as e:  # noqa: BLE001  (scipy raises ValueError, OSError, TypeError... on a damaged file)
        raise DatasetLayoutError(f"sprites: cannot read {path} ({type(e).__name__}: {e}); it is damaged: extract "
                                 "nips2015-analogy-data.tar.gz again") from None
    if name not in table:
        raise DatasetLayoutError(f"sprites: expected variable {name} in {path}")
    values = np.asarray(table[name]).ravel()
    if values.dtype.kind not in "iuf" or not np.all(np.isfinite(values)) or np.any(values != np.round(values)) \
            or (values.size and values.max() > 1e6):
        raise DatasetLayoutError(f"sprites: expected whole 1-based character numbers in {name} of {path}; it is "
                                 "damaged: extract nips2015-analogy-data.tar.gz again")
    one_based = {int(i) for i in values}
    if one_based and min(one_based) < 1:
        raise DatasetLayoutError(f"sprites: expected 1-based character indices in {name} of {path}, found 0")
    return sorted(i - 1 for i in one_based)


def read_character_shapes(path: Path) -> tuple[dict[str, int], list[int]]:
    """A character file's 7 attribute codes by name and the frame count of each of its 21 animations."""
    try:
        return _character_shapes(path)
    except DatasetLayoutError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:  # h5py on a damaged file
        raise DatasetLayoutError(f"sprites: cannot read {path} ({type(e).__name__}: {e}); it is damaged: extract "
                                 "nips2015-analogy-data.tar.gz again") from None


def _character_shapes(path: Path) -> tuple[dict[str, int], list[int]]:
    with h5py.File(path, "r") as f:
        if "sprites" not in f or "labels" not in f or f["sprites"].shape != (len(ANIMATIONS), 1):
            raise DatasetLayoutError(f"sprites: expected datasets sprites (21, 1) and labels (7, 1) in {path}")
        codes = np.asarray(f["labels"][()]).ravel()
        if codes.size != len(ATTRIBUTES):
            raise DatasetLayoutError(f"sprites: expected {len(ATTRIBUTES)} labels in {path}, got {codes.size}")
        counts = [frame_count(f[f["sprites"][cell, 0]], path) for cell in range(len(ANIMATIONS))]
    return {name: int(round(float(code))) for name, code in zip(ATTRIBUTES, codes)}, counts


def frame_count(animation: h5py.Dataset, path: Path) -> int:
    """T of a (T, 10800) animation array; 0 for an empty MATLAB cell (stored as a small array of its dimensions)."""
    if animation.attrs.get("MATLAB_empty", 0):
        return 0
    if animation.ndim != 2 or animation.shape[1] != FRAME_SIZE:
        raise DatasetLayoutError(f"sprites: expected (frames, {FRAME_SIZE}) arrays in {path}, got {animation.shape}")
    if animation.dtype.kind not in "iuf":
        raise DatasetLayoutError(f"sprites: expected frames of numbers in {path}, got {animation.dtype}")
    frames = animation.shape[0]
    declared = frames * FRAME_SIZE * animation.dtype.itemsize
    if frames > MAX_FRAMES or declared > MAX_STORAGE_RATIO * max(animation.id.get_storage_size(), 1):
        raise DatasetLayoutError(f"sprites: {path} declares an animation of {frames:,} frames ({declared:,} bytes) "
                                 f"but stores {animation.id.get_storage_size():,} bytes (real ones have at most 13 "
                                 "frames); it is damaged: extract nips2015-analogy-data.tar.gz again")
    return frames
