"""Food-101: photographs of 101 dishes, 750 train and 250 test images per class."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from latentds.datasets.public import PublicDataset, factor_row, plain_relative
from latentds.errors import DatasetLayoutError


class Food101(PublicDataset, name="food101"):
    """The images of one Food-101 split.

    ``root`` is the directory that contains ``food-101/`` (what ``torchvision.datasets.Food101`` takes as root);
    the ``food-101`` folder itself works too. It must hold ``images/<class>/<id>.jpg``, ``meta/classes.txt`` and
    ``meta/{split}.json`` (``{class: ["class/id", …]}``; ``meta/{split}.txt`` is read when the JSON is absent).
    Labels: ``label`` (index of the class in ``classes.txt``) and ``class_name``.
    """

    root_help = "the directory holding food-101/ (images/, meta/)"

    splits = ("train", "test")
    description = (
        "Food-101 (Bossard, Guillaumin and Van Gool, ECCV 2014): 101,000 photographs of 101 food dishes from "
        "foodspotting.com, 1,000 per class with the official split of 750 train and 250 test images per class; "
        "images are rescaled to at most 512 px a side. The test images were checked by hand; the training images "
        "were not and contain some label noise on purpose. Labels: label (0-100, the line of the class in "
        "meta/classes.txt) and class_name (e.g. apple_pie). Source: "
        "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/."
    )
    citation = (
        "@inproceedings{bossard14,\n"
        "  title={Food-101 -- Mining Discriminative Components with Random Forests},\n"
        "  author={Bossard, Lukas and Guillaumin, Matthieu and Van Gool, Luc},\n"
        "  booktitle={European Conference on Computer Vision (ECCV)},\n"
        "  year={2014}\n"
        "}"
    )

    def __init__(self, root: str | os.PathLike, split: str | None = None):
        super().__init__(root, split)
        nested = self.root / "food-101"
        self.folder = self.root if (self.root / "meta").is_dir() and not nested.is_dir() else nested
        self.images = self.require(self.folder / "images", "the image folder food-101/images/")
        meta = self.folder / "meta"
        classes = self.require(meta / "classes.txt", "the class list food-101/meta/classes.txt")
        try:
            lines = classes.read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError) as e:
            raise DatasetLayoutError(f"food101: cannot read {classes} ({e}); it is damaged: download and extract "
                                     "food-101 again") from None
        self.classes = [line.strip() for line in lines if line.strip()]
        # Indices follow classes.txt, as the dataset documents them; torchvision's Food101 would number the classes
        # of the split's JSON in sorted order instead, and would import torch just to list files.
        index = {name: i for i, name in enumerate(self.classes)}
        self.entries: list[tuple[str, int]] = []  # ("class/id", label)
        self.skipped: list[str] = []  # entries that are not "class/id" ("../../x"): never read, counted
        for entry in sorted(self.read_split(meta)):
            if not plain_relative(entry) or entry.count("/") != 1:
                self.skipped.append(entry)
                continue
            name = entry.split("/")[0]
            if name not in index:
                raise DatasetLayoutError(f"food101: class {name!r} of {entry} is not in {meta / 'classes.txt'}")
            self.entries.append((entry, index[name]))

    def read_split(self, meta: Path) -> list[str]:
        """The split's "class/id" entries, from meta/{split}.json or else meta/{split}.txt."""
        path = meta / f"{self.split}.json"
        try:
            if path.exists():
                with open(path, encoding="utf-8") as f:
                    entries = [entry for entries in json.load(f).values() for entry in entries]
                if not all(isinstance(entry, str) for entry in entries):
                    raise ValueError("its lists must hold \"class/id\" strings")
                return entries
            path = self.require(meta / f"{self.split}.txt", f"the split list food-101/meta/{self.split}.json")
            text = path.read_text(encoding="utf-8")
        except (OSError, ValueError, AttributeError, TypeError, RecursionError) as e:
            raise DatasetLayoutError(f"food101: cannot read {path} ({e}); it is damaged: download "
                                     "and extract food-101 again") from None
        return [line.strip() for line in text.splitlines() if line.strip()]

    def factor_table(self) -> list[dict]:
        return [factor_row("label", 0, len(self.classes) - 1, "the dish: the line of its class in meta/classes.txt")]

    def __len__(self) -> int:
        return len(self.entries)

    def source_file(self, index: int):
        return self.images / f"{self.entries[index][0]}.jpg"

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry, label = self.entries[index]
        image = self.open_rgb(self.require(self.images / f"{entry}.jpg", f"image {entry}.jpg"))
        return {"key": "food101_" + re.sub(r"[^A-Za-z0-9_-]", "-", entry.replace("/", "_")), "image": image,
                "labels": {"label": label, "class_name": self.classes[label]}}
