"""UTKFace: aligned and cropped faces labelled with age, gender and race in their file names."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from latentds.datasets.public import PublicDataset, factor_row

GENDERS = ("male", "female")
RACES = ("White", "Black", "Asian", "Indian", "Others")
# {age}_{gender}_{race}_{yyyymmddHHMMSSFFF}.jpg.chip.jpg; anything else (a missing or empty field, a stray space,
# a missing dot) is one of the real data's malformed names and is skipped rather than guessed at. ASCII digits
# only: "\d" alone also reads Arabic-Indic or fullwidth digits as an age.
NAME = re.compile(r"(?P<age>\d{1,3})_(?P<gender>[01])_(?P<race>[0-4])_(?P<datetime>\d+)\.jpg\.chip\.jpg", re.ASCII)
MAX_AGE = 116  # the dataset's documented range is 0-116: a name with an age beyond it is malformed
TEST_PERCENT = 20


def utkface_split(file_name: str) -> str:
    """"train" or "test" for one file name: sha1 of the name, first 8 hex digits as an integer, mod 100 < 20 → test.

    It depends on the name alone, so the split is the same whatever the file order or which other files exist.
    """
    bucket = int(hashlib.sha1(file_name.encode()).hexdigest()[:8], 16) % 100
    return "test" if bucket < TEST_PERCENT else "train"


class UTKFace(PublicDataset, name="utkface"):
    """UTKFace aligned and cropped faces (200×200 JPEGs).

    ``root`` is the directory that contains the ``UTKFace/`` folder (the ``UTKFace.tar.gz`` extraction
    directory); the ``UTKFace`` folder itself works too. Labels: ``age``, ``gender`` (0 male, 1 female),
    ``race`` (0 White, 1 Black, 2 Asian, 3 Indian, 4 Others), ``gender_name``, ``race_name``.
    Files whose names do not parse are left out and listed, by name, in ``self.skipped``.
    Splits: "all", or "train"/"test" (80/20 by ``utkface_split`` of the file name; there is no official split).
    """

    root_help = "the directory holding UTKFace/ ({age}_{gender}_{race}_{date}.jpg.chip.jpg)"

    splits = ("all", "train", "test")
    description = (
        "UTKFace (Zhang, Song and Qi, CVPR 2017): 23,708 aligned and cropped 200x200 face images of people aged "
        "0 to 116, labelled from their file names with age (years), gender (0 male, 1 female) and race "
        "(0 White, 1 Black, 2 Asian, 3 Indian, 4 Others); the labels were estimated by the DEX algorithm and "
        "checked by human annotators. Files with malformed names are skipped. There is no official split: "
        "train/test is 80/20 by the sha1 of the file name. Source: https://susanqq.github.io/UTKFace/ "
        "(UTKFace.tar.gz, 'Aligned&Cropped Faces'); non-commercial research use only."
    )
    citation = (
        "@inproceedings{zhifei2017cvpr,\n"
        "  title={Age Progression/Regression by Conditional Adversarial Autoencoder},\n"
        "  author={Zhang, Zhifei and Song, Yang and Qi, Hairong},\n"
        "  booktitle={IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},\n"
        "  year={2017}\n"
        "}"
    )

    def __init__(self, root: str | os.PathLike, split: str | None = None):
        super().__init__(root, split)
        nested = self.root / "UTKFace"
        if nested.is_dir():
            self.folder = nested
        elif self.root.name == "UTKFace" or any(self.root.glob("*.jpg.chip.jpg")):
            self.folder = self.root
        else:
            self.require(nested, "the UTKFace/ folder of {age}_{gender}_{race}_{datetime}.jpg.chip.jpg images")
        self.files: list[str] = []
        self.skipped: list[str] = []
        for entry in sorted(os.scandir(self.folder), key=lambda e: e.name):
            try:
                regular = entry.is_file()
            except OSError:  # a symlink loop (ELOOP), or a link into a place that cannot be read
                regular = False
            if entry.name.startswith(".") or not regular:
                if not entry.name.startswith(".") and NAME.fullmatch(entry.name):
                    self.skipped.append(entry.name)  # named as an image but not a readable file: reported
                continue
            fields = NAME.fullmatch(entry.name)
            if not fields or int(fields["age"]) > MAX_AGE:
                self.skipped.append(entry.name)
            elif self.split == "all" or utkface_split(entry.name) == self.split:
                self.files.append(entry.name)

    def factor_table(self) -> list[dict]:
        return [factor_row("age", 0, MAX_AGE, "age estimated by DEX, checked by annotators", "years"),
                factor_row("gender", 0, 1, "0 male, 1 female"),
                factor_row("race", 0, len(RACES) - 1, ", ".join(f"{k} {r}" for k, r in enumerate(RACES)))]

    def __len__(self) -> int:
        return len(self.files)

    def source_file(self, index: int):
        return self.folder / self.files[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        file_name = self.files[index]
        fields = NAME.fullmatch(file_name)
        age, gender, race = int(fields["age"]), int(fields["gender"]), int(fields["race"])
        labels = {"age": age, "gender": gender, "race": race, "gender_name": GENDERS[gender], "race_name": RACES[race]}
        stem = file_name.removesuffix(".jpg.chip.jpg")  # the fields as written, so distinct names give distinct keys
        return {"key": f"utkface_{stem}",
                "image": self.open_rgb(self.source_file(index)), "labels": labels}
