"""CelebA: aligned celebrity faces with 40 binary attributes and identities, in torchvision's folder layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from latentds.datasets.public import PublicDataset, factor_row
from latentds.errors import DatasetLayoutError
from latentds.text import terminal_text

PARTITIONS = {"train": 0, "valid": 1, "test": 2}


class CelebA(PublicDataset, name="celeba"):
    """CelebA aligned and cropped faces (178×218 JPEGs).

    ``root`` is the directory that contains ``celeba/`` (what ``torchvision.datasets.CelebA`` takes as root);
    the ``celeba`` folder itself works too. It must hold ``img_align_celeba/``, ``list_attr_celeba.txt``,
    ``identity_CelebA.txt`` and ``list_eval_partition.txt``. The text files are parsed here (torchvision checks
    their MD5s), tolerating CRLF line ends and runs of spaces. Labels: each of the 40 attributes by name (0/1),
    ``identity`` (celebrity id), ``partition`` (0 train, 1 valid, 2 test); plus ``landmarks`` (name → pixel) and
    ``bbox`` ([x, y, w, h], in the unaligned in-the-wild image) when their optional files are present.
    """

    root_help = "the directory holding celeba/ (img_align_celeba/, list_attr_celeba.txt, ...)"

    splits = ("train", "valid", "test", "all")
    description = (
        "CelebFaces Attributes (CelebA; Liu, Luo, Wang and Tang, ICCV 2015): 202,599 aligned and cropped 178x218 "
        "face images of 10,177 celebrities. Labels: 40 binary attributes (e.g. Smiling, Male, Eyeglasses; 1 "
        "present, 0 absent), the celebrity identity, the official partition (0 train 162,770, 1 valid 19,867, "
        "2 test 19,962), and where their files are present 5 facial landmarks in the aligned image and the face "
        "box in the original image. Source: https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html; non-commercial "
        "research use only."
    )
    citation = (
        "@inproceedings{liu2015faceattributes,\n"
        "  title={Deep Learning Face Attributes in the Wild},\n"
        "  author={Liu, Ziwei and Luo, Ping and Wang, Xiaogang and Tang, Xiaoou},\n"
        "  booktitle={Proceedings of International Conference on Computer Vision (ICCV)},\n"
        "  year={2015}\n"
        "}"
    )

    def __init__(self, root: str | os.PathLike, split: str | None = None):
        super().__init__(root, split)
        nested = self.root / "celeba"
        self.folder = nested if nested.is_dir() or not (self.root / "list_eval_partition.txt").exists() else self.root
        self.images = self.require(self.folder / "img_align_celeba", "the image folder img_align_celeba/")
        _, partition = read_table(self.require(self.folder / "list_eval_partition.txt", "list_eval_partition.txt"))
        wanted = PARTITIONS.get(self.split)
        codes = {name: code.strip() for name, code in partition.items()}
        if bad := next((name for name, code in codes.items() if code not in ("0", "1", "2")), None):
            raise DatasetLayoutError(f"celeba: expected partition 0, 1 or 2 for {bad} in list_eval_partition.txt")
        self.files = sorted(name for name, code in codes.items() if wanted is None or code == str(wanted))
        self.partition = [int(codes[name]) for name in self.files]
        self.identity = self.int_rows("identity_CelebA.txt", 1)[1][:, 0].tolist()
        self.attribute_names, values = self.int_rows("list_attr_celeba.txt")
        check_attribute_names(self.attribute_names, self.folder / "list_attr_celeba.txt")
        self.attributes = (values > 0).astype(np.uint8)  # {-1, 1} in the file (some copies use {0, 1})
        self.extras = {label: self.int_rows(file) if (self.folder / file).exists() else None for label, file in
                       (("landmarks", "list_landmarks_align_celeba.txt"), ("bbox", "list_bbox_celeba.txt"))}

    def int_rows(self, file: str, width: int | None = None) -> tuple[list[str], np.ndarray]:
        """(column names, int32 array with one row per image of self.files) from a table file.

        Without ``width`` the file has a header (line 1 the count, line 2 the column names) that gives the width.
        """
        names, table = read_table(self.require(self.folder / file, file), header=width is None)
        width = len(names) if width is None else width
        rows = np.empty((len(self.files), width), np.int32)
        for i, name in enumerate(self.files):
            if name not in table:
                raise DatasetLayoutError(f"celeba: {file} has no line for {name}, which list_eval_partition.txt lists")
            fields = table[name].split()
            if len(fields) != width:
                raise DatasetLayoutError(f"celeba: expected {width} values for {name} in {file}, got {len(fields)}")
            try:
                rows[i] = fields
            except (ValueError, OverflowError):  # not a number, or one past int32 (99999999999)
                raise DatasetLayoutError(f"celeba: expected integers for {name} in {file}, got {fields}") from None
        return names, rows

    def factor_table(self) -> list[dict]:
        """The 40 binary attributes, in the order of list_attr_celeba.txt (identity is an id, not a factor)."""
        return [factor_row(name, 0, 1, f"attribute {name.replace('_', ' ')}: 1 present, 0 absent")
                for name in self.attribute_names]

    def __len__(self) -> int:
        return len(self.files)

    def source_file(self, index: int):
        return self.images / self.files[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.files[index]
        labels: dict[str, Any] = dict(zip(self.attribute_names, map(int, self.attributes[index])))
        labels |= {"identity": self.identity[index], "partition": self.partition[index]}
        if self.extras["landmarks"]:
            names, values = self.extras["landmarks"]
            labels["landmarks"] = dict(zip(names, map(int, values[index])))
        if self.extras["bbox"]:
            labels["bbox"] = self.extras["bbox"][1][index].tolist()
        image = self.open_rgb(self.require(self.images / name, f"image {name}"))
        return {"key": f"celeba_{Path(name).stem}", "image": image, "labels": labels}


# Keys a CelebA sample's labels hold besides the attributes, and those pack adds: an attribute may not take one.
OTHER_LABELS = ("identity", "partition", "landmarks", "bbox", "index", "source_key", "dataset", "split")


def check_attribute_names(names: list[str], file: Path) -> None:
    """DatasetLayoutError unless every attribute name is a label key the loader can read back (a plain name of
    letters, digits and "_": also its factor path), none repeats, and none is one of the other labels' keys; so
    pack refuses, in one line, a header that would make an unusable set."""
    from latentds.datasets.factors import parse_path  # noqa: PLC0415

    seen = set()
    for name in names:
        try:
            plain = parse_path(name) == (False, (name,))
        except ValueError:
            plain = False
        problem = ("is not a plain name (letters, digits and _)" if not plain else "is repeated" if name in seen
                   else "is the name of another label" if name in OTHER_LABELS else "")
        if problem:
            raise DatasetLayoutError(f"celeba: attribute {terminal_text(name)[:60]!r} in the header of {file} "
                                     f"{problem}; it is damaged: download it again")
        seen.add(name)


def read_table(path: Path, header: bool = False) -> tuple[list[str], dict[str, str]]:
    """(column names, {image file name: the rest of its line}) of a CelebA text file.

    With ``header``, line 1 (the image count) is skipped and line 2 gives the column names. Any run of spaces
    separates fields, and CRLF line ends and a trailing space on the header line are harmless.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, ValueError) as e:  # ValueError: not UTF-8 text, e.g. a damaged file
        raise DatasetLayoutError(f"celeba: cannot read {path} ({e}); it is damaged: download it again") from None
    if header and len(lines) < 2:
        raise DatasetLayoutError(f"celeba: expected a count line and a header line at the top of {path}")
    names = [n for n in lines[1].split() if n != "image_id"] if header else []  # the bbox file names column 1 too
    rows = (line.split(None, 1) for line in lines[2 if header else 0:])
    return names, {fields[0]: fields[1] if len(fields) > 1 else "" for fields in rows if fields}
