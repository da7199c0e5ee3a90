"""The common shape of the public image datasets, and their registry.

Every dataset (Sprites, UTKFace, CelebA, COCO, Food-101) is a ``PublicDataset``: constructed from the dataset's
root directory (in its real on-disk layout) and a split, it has a length and returns samples

    {"key": "utkface_000123",         # unique within the dataset; letters, digits, '_' and '-' only (no dots)
     "image": PIL.Image.Image,        # always RGB
     "labels": {...}}                 # plain JSON: ints, floats, strings, lists, dicts

Subclasses register themselves by ``name`` (``class UTKFace(PublicDataset, name="utkface")``), so
``open_dataset("utkface", root)`` finds them and ``latentds pack`` lists them with no list to edit elsewhere.
"""

from __future__ import annotations

import abc
import importlib
import os
from pathlib import Path
from typing import Any, ClassVar, Iterator

from PIL import Image

from latentds.errors import DatasetLayoutError, InvalidParameterError
from latentds.datasets.transforms import to_rgb

# Modules that define datasets; imported on first use of the registry.
DATASET_MODULES = ("sprites", "utkface", "celeba", "coco", "food101")

REGISTRY: dict[str, type[PublicDataset]] = {}


class PublicDataset(abc.ABC):
    """Base class: a split of a public dataset read from its root directory."""

    name: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train",)
    description: ClassVar[str] = ""  # one paragraph for the dataset card: what it is, its labels, its source
    citation: ClassVar[str] = ""

    def __init_subclass__(cls, name: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if name:
            cls.name = name
            REGISTRY[name] = cls

    def __init__(self, root: str | os.PathLike, split: str | None = None):
        self.root = Path(root)
        self.split = split or self.splits[0]
        if self.split not in self.splits:
            raise InvalidParameterError(f"{self.name} has no split {self.split!r}; choose one of: "
                                        f"{', '.join(self.splits)}")
        if not self.root.is_dir():
            raise DatasetLayoutError(f"{self.name} root {self.root} does not exist or is not a directory")

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of samples in the split."""

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample ``index``: {"key", "image", "labels"}."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    @staticmethod
    def open_rgb(path: Path) -> Image.Image:
        """Open an image file as RGB (greyscale, palette, CMYK and alpha images converted)."""
        with Image.open(path) as image:
            return to_rgb(image)

    def require(self, path: Path, what: str) -> Path:
        """``path`` if it exists, else a DatasetLayoutError saying what was expected where."""
        if not path.exists():
            raise DatasetLayoutError(f"{self.name}: expected {what} at {path}; is {self.root} the dataset root?")
        return path


def dataset_names() -> list[str]:
    _load_all()
    return sorted(REGISTRY)


def dataset_class(name: str) -> type[PublicDataset]:
    """The PublicDataset subclass registered as ``name``."""
    _load_all()
    if name not in REGISTRY:
        raise InvalidParameterError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def open_dataset(name: str, root: str | os.PathLike, split: str | None = None) -> PublicDataset:
    """The ``split`` of public dataset ``name`` (see ``dataset_names()``) read from ``root``."""
    return dataset_class(name)(root, split)


def _load_all() -> None:
    for module in DATASET_MODULES:
        importlib.import_module(f"latentds.datasets.{module}")
