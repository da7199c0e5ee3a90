"""The common shape of the public image datasets, and their registry.

Every dataset (Sprites, UTKFace, CelebA, COCO, Food-101) is a ``PublicDataset``: constructed from the dataset's
root directory (in its real on-disk layout) and a split, it has a length and returns samples

    {"key": "utkface_000123",         # unique within the dataset; letters, digits, '_' and '-' only (no dots)
     "image": PIL.Image.Image,        # always RGB
     "labels": {...}}                 # plain JSON: ints, floats, strings, lists, dicts

Subclasses register themselves by ``name`` (``class UTKFace(PublicDataset, name="utkface")``) into ``REGISTRY`` (a
latentds.registry.Registry) and declare ``root_help`` (what ROOT is for ``latentds pack``). There is no list of
datasets to edit: on first use (``dataset_names``, ``dataset_class``, ``open_dataset``) the registry imports
``DATASET_MODULES`` (a latentds.discovery.PackageModules): every module of ``latentds.datasets`` whose source defines
a dataset class -- a top-level class deriving from ``PublicDataset`` or passing ``name=`` -- and only those, so the
stream, shard and pack modules (and torch) are never imported for it. An invalid name, or a second dataset with a
taken name, is a RegistrationError (a TypeError) naming both classes.
"""

from __future__ import annotations

import abc
import ast
import errno
import os
import re
import stat
from pathlib import Path
from typing import Any, ClassVar, Iterator

from PIL import Image, UnidentifiedImageError

from latentds.datasets.transforms import to_rgb
from latentds.discovery import PackageModules
from latentds.errors import DatasetLayoutError, InvalidParameterError, RegistrationError
from latentds.registry import Registry, qualified_name


def defines_dataset(tree: ast.Module) -> bool:
    """Whether a module's parsed source has a top-level class deriving from PublicDataset or passing ``name=``."""
    return any(isinstance(node, ast.ClassDef) and (
        any(keyword.arg == "name" for keyword in node.keywords)
        or any(ast.unparse(base).split(".")[-1] == "PublicDataset" for base in node.bases)) for node in tree.body)


DATASET_MODULES = PackageModules("latentds.datasets", declares=defines_dataset)

# The registered datasets by name: a name is a CLI word, a file-name prefix and a sample-key prefix (lower-case
# letters, digits and '_'), checked by the Registry.
REGISTRY: Registry[type[PublicDataset]] = Registry("public dataset", discover=DATASET_MODULES)


class PublicDataset(abc.ABC):
    """Base class: a split of a public dataset read from its root directory."""

    name: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train",)
    description: ClassVar[str] = ""  # one paragraph for the dataset card: what it is, its labels, its source
    citation: ClassVar[str] = ""
    # One line for `latentds pack --help`: which directory ROOT is and what it holds. Unset, it is the sentence of
    # the class docstring that begins "``root`` is" (up to its first ';' or '.').
    root_help: ClassVar[str] = ""

    def __init_subclass__(cls, name: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if name is None:
            return
        if not cls.__dict__.get("root_help"):
            cls.root_help = _root_sentence(cls.__doc__ or "")
        if not cls.root_help:
            raise RegistrationError(f"{qualified_name(cls)} (dataset {name!r}) declares no root_help and its docstring "
                                    "has no sentence '``root`` is ...': say which directory ROOT is")
        REGISTRY.add(name, cls)  # RegistrationError (a TypeError) on an invalid or taken name
        cls.name = name

    def __init__(self, root: str | os.PathLike, split: str | None = None):
        self.root = Path(root)
        self.split = split or self.splits[0]
        if self.split not in self.splits:
            raise InvalidParameterError(f"{self.name} has no split {self.split!r}; choose one of: "
                                        f"{', '.join(self.splits)}")
        if not self.root.is_dir():
            raise DatasetLayoutError(f"{self.name} root {self.root} does not exist or is not a directory")

    def factor_table(self) -> list[dict]:
        """The factor table a pack of this split writes into its manifest: one row per numeric label that is a
        factor of variation ({name, type ("int" or "float"), range [low, high], unit, path, varies, description};
        ``path`` is where the value sits in a sample's JSON, see latentds.datasets.factors). Streams of the pack
        then carry these factors as vectors, and analysis probes them. Empty (the default): no factors."""
        return []

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of samples in the split."""

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample ``index``: {"key", "image", "labels"}."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def open_rgb(self, path: Path) -> Image.Image:
        """Open an image file as RGB (greyscale, palette, CMYK and alpha images converted). Only a regular file
        inside the dataset's root is read (``open_inside``); anything else raises OSError, so pack skips it and
        reports it as it does an undecodable image."""
        with os.fdopen(open_inside(path, self.root), "rb") as f:
            try:
                image = Image.open(f)
            except UnidentifiedImageError:  # named by its path, as Image.open(path) names it
                raise UnidentifiedImageError(f"cannot identify image file {str(path)!r}") from None
            with image:
                return to_rgb(image)

    def require(self, path: Path, what: str) -> Path:
        """``path`` if it exists, else a DatasetLayoutError saying what was expected where."""
        if not path.exists():
            raise DatasetLayoutError(f"{self.name}: expected {what} at {path}; is {self.root} the dataset root?")
        return path


def open_inside(path: str | os.PathLike, root: str | os.PathLike) -> int:
    """A read-only descriptor of ``path`` if it is a regular file inside ``root`` once both are resolved (so
    neither ``..`` in a name read from metadata, nor an absolute name, nor a symlink pointing elsewhere reads a
    file outside ROOT), opened without blocking (a FIFO would block forever) and without following a last-moment
    symlink; else OSError saying why."""
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise OSError(errno.EACCES, f"{path} lies outside the dataset root {root}; not read")
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path} is not a regular file; not read")
    os.set_blocking(fd, True)
    return fd


def plain_relative(name: str) -> bool:
    """Whether ``name`` (a file name read from metadata) is a relative path that stays below its folder: not
    absolute, no ``..`` or empty part, no backslash or control character."""
    return (isinstance(name, str) and bool(name) and not name.startswith("/")
            and not re.search(r"[\\\x00-\x1f]", name)
            and all(part not in ("", ".", "..") for part in name.split("/")))


def factor_row(name: str, low: float, high: float, description: str, unit: str = "", kind: str = "int") -> dict:
    """One row of a factor table (``PublicDataset.factor_table``) for the top-level label ``name``."""
    return {"name": name, "type": kind, "range": [low, high], "unit": unit, "path": name, "varies": True,
            "description": description}


def _root_sentence(doc: str) -> str:
    """"``root`` is X; ..." in a docstring -> "X" as plain text (backquotes dropped, whitespace collapsed)."""
    found = re.search(r"``root`` is (.+?)(?:[;.](?:\s|$)|$)", doc, re.DOTALL)
    return " ".join(found[1].replace("``", "").split()) if found else ""


def dataset_names() -> list[str]:
    """The names of every registered public dataset, sorted."""
    return REGISTRY.names()


def dataset_class(name: str) -> type[PublicDataset]:
    """The PublicDataset subclass registered as ``name``."""
    return REGISTRY.get(name)


def open_dataset(name: str, root: str | os.PathLike, split: str | None = None) -> PublicDataset:
    """The ``split`` of public dataset ``name`` (see ``dataset_names()``) read from ``root``."""
    return dataset_class(name)(root, split)

