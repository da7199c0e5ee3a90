"""COCO 2017: everyday scenes with object boxes and captions, read from the official JSON files (no pycocotools)."""

from __future__ import annotations

import json
import os
from typing import Any

from latentds.datasets.public import PublicDataset, plain_relative
from latentds.errors import DatasetLayoutError


class Coco(PublicDataset, name="coco"):
    """The images of one COCO 2017 split.

    ``root`` is the COCO directory that holds ``train2017/``, ``val2017/``, ``test2017/`` and ``annotations/``.
    The images of a split are those listed in ``annotations/instances_{split}2017.json`` and/or
    ``annotations/captions_{split}2017.json`` (either may be missing), or ``image_info_test2017.json`` for "test".
    Labels: ``image_id``, ``file_name``, ``width``, ``height``, ``categories`` (sorted unique names of the objects
    boxed in the image), ``category_ids`` (sorted unique ids), ``boxes`` (``{"bbox": [x, y, w, h],
    "category_id", "iscrowd"}`` in annotation id order) and ``captions`` (stripped of the stray spaces and newlines
    some have) — empty lists where there are none.
    """

    root_help = "the directory holding train2017/, val2017/ and annotations/"

    splits = ("train", "val", "test")
    description = (
        "Microsoft COCO 2017 (Lin et al., ECCV 2014): photographs of everyday scenes, 118,287 train, 5,000 val and "
        "40,670 test images of varied sizes (up to 640 px a side). Labels from the official annotation files: image "
        "id, file name, size, the 80 object categories present with their boxes ([x, y, width, height] in pixels, "
        "with category id and crowd flag), and about five human-written captions per image; test images have no "
        "annotations. Images without objects have empty lists. Source: https://cocodataset.org (2017 images and "
        "annotations); annotations CC BY 4.0, images under their Flickr licences."
    )
    citation = (
        "@inproceedings{lin2014microsoft,\n"
        "  title={Microsoft COCO: Common Objects in Context},\n"
        "  author={Lin, Tsung-Yi and Maire, Michael and Belongie, Serge and Hays, James and Perona, Pietro and "
        "Ramanan, Deva and Doll{\\'a}r, Piotr and Zitnick, C Lawrence},\n"
        "  booktitle={European Conference on Computer Vision (ECCV)},\n"
        "  pages={740--755},\n"
        "  year={2014}\n"
        "}"
    )

    def __init__(self, root: str | os.PathLike, split: str | None = None):
        super().__init__(root, split)
        self.images_dir = self.require(self.root / f"{self.split}2017", f"the image folder {self.split}2017/")
        folder = self.root / "annotations"
        names = (["image_info_test2017.json"] if self.split == "test" else
                 [f"instances_{self.split}2017.json", f"captions_{self.split}2017.json"])
        present = [folder / name for name in names if (folder / name).exists()]
        if not present:
            self.require(folder / names[0], " or ".join(names))
        images: dict[int, tuple[str, int, int]] = {}
        self.category_names: dict[int, str] = {}
        self.boxes: dict[int, list[dict]] = {}
        self.captions: dict[int, list[str]] = {}
        for path in present:
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
            except RecursionError:
                raise DatasetLayoutError(f"coco: {path} is malformed (nested too deeply); download and extract it "
                                         "again") from None
            except (OSError, ValueError) as e:  # ValueError: bad JSON or bad UTF-8, e.g. a truncated download
                raise DatasetLayoutError(f"coco: cannot read the annotation file {path} ({e}); it is damaged or "
                                         "incomplete: download and extract it again") from None
            try:
                self._read_annotations(data, images)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise DatasetLayoutError(f"coco: {path} is not a COCO annotation file as expected "
                                         f"({type(e).__name__}: {e}); download and extract it again") from None
        # A file_name read from the annotations must stay inside the split's folder: "../x" or "/etc/x" is never
        # read, but skipped and counted (the manifest's "skipped").
        self.skipped = sorted(fields[0] for fields in images.values() if not plain_relative(fields[0]))
        self.images = sorted((image_id, *fields) for image_id, fields in images.items() if plain_relative(fields[0]))

    def _read_annotations(self, data: dict, images: dict[int, tuple[str, int, int]]) -> None:
        images |= {int(image["id"]): (str(image["file_name"]), int(image["width"]), int(image["height"]))
                   for image in data.get("images", [])}
        self.category_names |= {category["id"]: category["name"] for category in data.get("categories", [])}
        for note in sorted(data.get("annotations", []), key=lambda note: note.get("id", 0)):
            if "caption" in note:
                self.captions.setdefault(note["image_id"], []).append(note["caption"].strip())
            elif "bbox" in note:
                box = {"bbox": [float(v) for v in note["bbox"]], "category_id": int(note["category_id"]),
                       "iscrowd": int(note.get("iscrowd", 0))}
                self.boxes.setdefault(note["image_id"], []).append(box)

    def __len__(self) -> int:
        return len(self.images)

    def source_file(self, index: int):
        return self.images_dir / self.images[index][1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_id, file_name, width, height = self.images[index]
        boxes = self.boxes.get(image_id, [])
        category_ids = sorted({box["category_id"] for box in boxes})
        labels = {
            "image_id": image_id, "file_name": file_name, "width": width, "height": height,
            "categories": sorted({self.category_names.get(i, str(i)) for i in category_ids}),
            "category_ids": category_ids,
            "boxes": [{**box, "bbox": list(box["bbox"])} for box in boxes],  # copies: callers may edit labels
            "captions": list(self.captions.get(image_id, [])),
        }
        image = self.open_rgb(self.require(self.images_dir / file_name, f"image {file_name}"))
        return {"key": f"coco_{image_id:012d}", "image": image, "labels": labels}
