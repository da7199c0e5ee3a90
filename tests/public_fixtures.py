"""Tiny copies of the public datasets in their real on-disk layouts (see /work/shared/DATASETS.md), with their quirks.

Each ``build_NAME`` writes the registered dataset NAME under a directory and returns what the tests check against:
at least ``root`` (to pass to the loader), ``lengths`` ({split: samples}, every split of the dataset) and ``missing``
(the path, relative to an empty root, that the loader's error must name), plus the expected samples. ``BUILDERS``
collects them by that naming rule; a registered dataset without a builder fails tests/test_public_datasets.py.
Images are small solid colours (JPEG for the JPEG datasets) so a test can tell which file a sample came from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from PIL import Image

from latentds.datasets.sprites import ANIMATIONS


def write_jpeg(path: Path, colour, size=(16, 12), mode="RGB") -> None:
    """A solid-colour JPEG; ``colour`` is in ``mode`` ("RGB", "L" for greyscale, "CMYK")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, "JPEG", quality=95)


# --- 2D Sprites --------------------------------------------------------------------------------------------------

SPRITE_ATTRIBUTES = {  # identity -> body, sex, hair, armor, arm, greaves, weapon; distinct so a wrong file shows
    0: [0, 0, 0, 0, 0, 0, 0], 1: [1, 1, 1, 1, 1, 1, 1], 2: [2, 0, 5, 1, 0, 1, 0], 3: [0, 1, 6, 0, 1, 0, 1]}
SPRITE_SPLITS = {"trainidx": [3, 1], "validx": [2], "testidx": [4]}  # 1-based, as in sprites_splits.mat
MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Nov 30 12:00:00 2015 HDF5 schema 1.00 ."


def sprite_frame_count(cell: int) -> int:
    """Frames in the fixture's animation ``cell``: 1–3, not the real 7/8/9/6/13/6, to keep the files small."""
    return cell % 3 + 1


def sprite_frame(blue: int) -> np.ndarray:
    """A (60, 60, 3) uint8 frame: red grows down the rows, green along the columns, blue names the frame."""
    rows, cols = np.meshgrid(np.arange(60), np.arange(60), indexing="ij")
    return np.stack([rows * 4, cols * 4, np.full((60, 60), blue)], axis=-1).astype(np.uint8)


def build_sprites(directory: Path) -> dict:
    """``directory/data/sprites/`` with sprites_0..3.mat (MATLAB v7.3 via h5py) and sprites_splits.mat (v5).

    Returns {"root": the data/sprites folder, "blue": {(identity, cell, frame): blue value of that frame},
    "splits": {split: sorted 0-based identities}}.
    """
    folder = directory / "data" / "sprites"
    folder.mkdir(parents=True)
    blue, counter = {}, 0
    for identity, attributes in SPRITE_ATTRIBUTES.items():
        path = folder / f"sprites_{identity}.mat"
        with h5py.File(path, "w", userblock_size=512) as f:
            refs = f.create_group("#refs#")
            sprites = f.create_dataset("sprites", (len(ANIMATIONS), 1), dtype=h5py.ref_dtype)
            masks = f.create_dataset("masks", (len(ANIMATIONS), 1), dtype=h5py.ref_dtype)
            for cell in range(len(ANIMATIONS)):
                frames = []
                for t in range(sprite_frame_count(cell)):
                    blue[identity, cell, t] = counter
                    frames.append((sprite_frame(counter) / 255).reshape(-1, order="F"))  # MATLAB is column-major
                    counter += 1
                sprites[cell, 0] = refs.create_dataset(f"s{cell}", data=np.array(frames, np.float64)).ref
                masks[cell, 0] = refs.create_dataset(f"m{cell}", data=np.ones((len(frames), 3600))).ref
            f.create_dataset("labels", data=np.array(attributes, np.float64).reshape(7, 1))
        with open(path, "r+b") as f:  # MATLAB's text header in the HDF5 user block
            f.write(MATLAB_HEADER.ljust(128))
    scipy.io.savemat(folder / "sprites_splits.mat", {k: np.array([v], np.float64) for k, v in SPRITE_SPLITS.items()})
    splits = {name: sorted(i - 1 for i in SPRITE_SPLITS[key])
              for name, key in (("train", "trainidx"), ("val", "validx"), ("test", "testidx"))}
    per_character = sum(sprite_frame_count(cell) for cell in range(len(ANIMATIONS)))
    return {"root": folder, "blue": blue, "splits": splits, "missing": "sprites_splits.mat",
            "lengths": {split: per_character * len(identities) for split, identities in splits.items()}}


# --- UTKFace -----------------------------------------------------------------------------------------------------

UTKFACE_GOOD = {  # file name -> (age, gender, race, colour)
    "1_0_2_20161219140623097.jpg.chip.jpg": (1, 0, 2, (200, 30, 30)),
    "9_1_1_20170109204613446.jpg.chip.jpg": (9, 1, 1, (30, 200, 30)),
    "26_0_3_20170119180729375.jpg.chip.jpg": (26, 0, 3, (30, 30, 200)),
    "26_1_0_20170116230211362.jpg.chip.jpg": (26, 1, 0, (200, 200, 30)),
    "30_0_1_20170116000000030.jpg.chip.jpg": (30, 0, 1, (90, 160, 60)),  # sha1 bucket exactly 20: the train edge
    "45_1_4_20170117193813745.jpg.chip.jpg": (45, 1, 4, (30, 200, 200)),
    "61_0_0_20170104183755405.jpg.chip.jpg": (61, 0, 0, (200, 30, 200)),
    "80_1_2_20170110182418280.jpg.chip.jpg": (80, 1, 2, (120, 60, 10)),
    "116_1_4_20170120134921760.jpg.chip.jpg": (116, 1, 4, 90),  # greyscale JPEG
}
UTKFACE_MALFORMED = [  # the kinds of broken names in the real data
    "39_1_20170116174525125.jpg.chip.jpg",  # race missing: a naive split would read the date as race
    "61_1_20170109142408075.jpg.chip.jpg",
    "61_1_20170109150557335.jpg.chip.jpg",
    "24_0_1_20170116220224657 .jpg.chip.jpg",  # space before .jpg
    "55_0_0_20170116232725357jpg.chip.jpg",  # no dot before jpg
    "53__0_20170116184028385.jpg.chip.jpg",  # empty gender field (in-the-wild parts)
]


def build_utkface(directory: Path) -> dict:
    """``directory/UTKFace/`` with 9 well-named faces (one greyscale) and the 6 malformed names.

    Returns {"root": directory, "labels": {key: labels}, "colours": {key: RGB}, "files": {key: file name},
    "malformed": [names]}.
    """
    labels, colours, files = {}, {}, {}
    for name, (age, gender, race, colour) in UTKFACE_GOOD.items():
        grey = isinstance(colour, int)
        write_jpeg(directory / "UTKFace" / name, colour, size=(20, 20), mode="L" if grey else "RGB")
        key = "utkface_" + name.removesuffix(".jpg.chip.jpg")
        labels[key] = {"age": age, "gender": gender, "race": race, "gender_name": ["male", "female"][gender],
                       "race_name": ["White", "Black", "Asian", "Indian", "Others"][race]}
        colours[key], files[key] = (colour,) * 3 if grey else colour, name
    for name in UTKFACE_MALFORMED:
        write_jpeg(directory / "UTKFace" / name, (0, 0, 0), size=(20, 20))
    test = sum(int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 100 < 20 for name in UTKFACE_GOOD)
    return {"root": directory, "labels": labels, "colours": colours, "files": files, "malformed": UTKFACE_MALFORMED,
            "missing": "UTKFace",
            "lengths": {"all": len(UTKFACE_GOOD), "train": len(UTKFACE_GOOD) - test, "test": test}}


# --- CelebA ------------------------------------------------------------------------------------------------------

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair "
    "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones "
    "Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
    "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick "
    "Wearing_Necklace Wearing_Necktie Young"
).split()
CELEBA_PARTITION = {1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 2}  # image number -> 0 train, 1 valid, 2 test
LANDMARK_NAMES = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x " \
                 "rightmouth_y".split()


def write_crlf(path: Path, lines: list[str]) -> None:
    path.write_bytes("".join(line + "\r\n" for line in lines).encode())


def build_celeba(directory: Path, extras: bool = True) -> dict:
    """``directory/celeba/`` in torchvision's layout: 6 aligned images and the txt files with CRLF line ends,
    a trailing space on each header line and runs of spaces between fields, as in the real files.
    With ``extras`` also the optional landmark and bbox files.

    Returns {"root": directory, "labels": {key: labels}, "colours": {key: RGB}, "size": (w, h)}.
    """
    folder = directory / "celeba"
    rng = np.random.default_rng(7)
    attribute_lines = [str(len(CELEBA_PARTITION)), " ".join(CELEBA_ATTRIBUTES) + " "]
    identities, partitions, landmark_lines, bbox_lines = [], [], [str(len(CELEBA_PARTITION))], []
    landmark_lines.append(" ".join(LANDMARK_NAMES) + " ")
    bbox_lines += [str(len(CELEBA_PARTITION)), "image_id x_1 y_1 width height "]
    labels, colours = {}, {}
    for number, partition in CELEBA_PARTITION.items():
        name, key = f"{number:06d}.jpg", f"celeba_{number:06d}"
        colour = (40 * number, 255 - 40 * number, 128)
        write_jpeg(folder / "img_align_celeba" / name, colour, size=(12, 15))
        signs = rng.choice([-1, 1], len(CELEBA_ATTRIBUTES))
        identity, landmarks, bbox = 1000 + number % 4, list(range(number, number + 10)), [number, 2, 30, 40]
        attribute_lines.append(name + " " + " ".join(f"{s:>2}" for s in signs))
        identities.append(f"{name} {identity}")
        partitions.append(f"{name} {partition}")
        landmark_lines.append(name + "".join(f"{v:>5}" for v in landmarks))
        bbox_lines.append(name + "".join(f"{v:>6}" for v in bbox))
        labels[key] = {**{a: int(s > 0) for a, s in zip(CELEBA_ATTRIBUTES, signs)}, "identity": identity,
                       "partition": partition}
        if extras:
            labels[key] |= {"landmarks": dict(zip(LANDMARK_NAMES, landmarks)), "bbox": bbox}
        colours[key] = colour
    write_crlf(folder / "list_attr_celeba.txt", attribute_lines)
    write_crlf(folder / "identity_CelebA.txt", identities)
    write_crlf(folder / "list_eval_partition.txt", partitions)
    if extras:
        write_crlf(folder / "list_landmarks_align_celeba.txt", landmark_lines)
        write_crlf(folder / "list_bbox_celeba.txt", bbox_lines)
    counts = [list(CELEBA_PARTITION.values()).count(p) for p in range(3)]
    return {"root": directory, "labels": labels, "colours": colours, "size": (12, 15),
            "missing": "celeba/img_align_celeba",
            "lengths": {"train": counts[0], "valid": counts[1], "test": counts[2], "all": len(CELEBA_PARTITION)}}


# --- COCO 2017 ---------------------------------------------------------------------------------------------------

COCO_CATEGORIES = [{"supercategory": "person", "id": 1, "name": "person"},
                   {"supercategory": "animal", "id": 18, "name": "dog"},
                   {"supercategory": "furniture", "id": 63, "name": "couch"},
                   {"supercategory": "animal", "id": 17, "name": "cat"}]


def coco_image(image_id: int, size=(16, 12)) -> dict:
    return {"license": 3, "file_name": f"{image_id:012d}.jpg", "coco_url": "", "height": size[1], "width": size[0],
            "date_captured": "2013-11-14 17:02:52", "flickr_url": "", "id": image_id}


def coco_box(note_id: int, image_id: int, category: int, bbox: list) -> dict:
    return {"segmentation": [[1.0, 1.0, 5.0, 1.0, 5.0, 5.0]], "area": 16.0, "iscrowd": 0, "image_id": image_id,
            "bbox": bbox, "category_id": category, "id": note_id}


def write_coco_json(path: Path, images: list, annotations: list | None, categories: bool = True) -> None:
    data = {"info": {"description": "COCO 2017 Dataset", "year": 2017}, "licenses": [{"id": 3, "name": "x"}],
            "images": images}
    if annotations is not None:
        data["annotations"] = annotations
    if categories:
        data["categories"] = COCO_CATEGORIES
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def build_coco(directory: Path) -> dict:
    """``directory/{train,val,test}2017/`` and ``annotations/``.

    val: instances + captions; image 139 has two dogs and a person, 285 is a greyscale JPEG with a couch, 632 has no
    objects. train: instances only (no captions file); 9 has a cat, 25 nothing. test: image_info_test2017.json, 1 image.
    Returns {"root": directory, "labels": {split: {key: labels}}, "colours": {key: RGB}}.
    """
    colours = {139: (220, 40, 40), 285: (100, 100, 100), 632: (40, 40, 220), 9: (40, 220, 40), 25: (220, 220, 40),
               1: (40, 220, 220)}
    splits = {"val": [139, 285, 632], "train": [9, 25], "test": [1]}
    for split, ids in splits.items():
        for image_id in ids:
            grey = image_id == 285
            write_jpeg(directory / f"{split}2017" / f"{image_id:012d}.jpg", colours[image_id][0] if grey else
                       colours[image_id], mode="L" if grey else "RGB")
    notes = directory / "annotations"
    val_boxes = [coco_box(30, 139, 18, [1.5, 2.0, 3.0, 4.25]), coco_box(12, 285, 63, [0, 0, 16, 12]),
                 coco_box(7, 139, 1, [4.0, 1.0, 2.0, 9.0]), coco_box(21, 139, 18, [8.0, 3.0, 5.0, 5.0])]
    write_coco_json(notes / "instances_val2017.json", [coco_image(i) for i in (632, 139, 285)], val_boxes)
    captions = [{"image_id": 139, "id": 50, "caption": "Two dogs and a man in a room. "},
                {"image_id": 139, "id": 40, "caption": "A man watches his dogs.\n"},
                {"image_id": 632, "id": 60, "caption": "An empty blue wall."}]
    write_coco_json(notes / "captions_val2017.json", [coco_image(i) for i in (139, 285, 632)], captions,
                    categories=False)
    write_coco_json(notes / "instances_train2017.json", [coco_image(i) for i in (25, 9)],
                    [coco_box(3, 9, 17, [2.0, 2.0, 6.0, 6.0])])
    write_coco_json(notes / "image_info_test2017.json", [coco_image(1)], None)

    def labels(image_id, boxes, captions):
        names = {c["id"]: c["name"] for c in COCO_CATEGORIES}
        return {"image_id": image_id, "file_name": f"{image_id:012d}.jpg", "width": 16, "height": 12,
                "categories": sorted({names[c] for _, c in boxes}), "category_ids": sorted({c for _, c in boxes}),
                "boxes": [{"bbox": b, "category_id": c, "iscrowd": 0} for b, c in boxes], "captions": captions}

    expected = {
        "val": {"coco_000000000139": labels(139, [([4.0, 1.0, 2.0, 9.0], 1), ([8.0, 3.0, 5.0, 5.0], 18),
                                                  ([1.5, 2.0, 3.0, 4.25], 18)],
                                            ["A man watches his dogs.", "Two dogs and a man in a room."]),
                "coco_000000000285": labels(285, [([0.0, 0.0, 16.0, 12.0], 63)], []),
                "coco_000000000632": labels(632, [], ["An empty blue wall."])},
        "train": {"coco_000000000009": labels(9, [([2.0, 2.0, 6.0, 6.0], 17)], []),
                  "coco_000000000025": labels(25, [], [])},
        "test": {"coco_000000000001": labels(1, [], [])},
    }
    return {"root": directory, "labels": expected, "missing": "train2017",
            "lengths": {split: len(ids) for split, ids in splits.items()},
            "colours": {f"coco_{i:012d}": (c[0],) * 3 if i == 285 else c for i, c in colours.items()}}


# --- Food-101 ----------------------------------------------------------------------------------------------------

FOOD_CLASSES = ["apple_pie", "baby_back_ribs", "waffles"]
FOOD_SPLITS = {  # the test split has no baby_back_ribs here, so its class numbers differ from sorted JSON keys
    "train": {"apple_pie": ["1005649", "134"], "baby_back_ribs": ["2432"], "waffles": ["98765"]},
    "test": {"waffles": ["555", "3"], "apple_pie": ["77"]},
}
FOOD_COLOURS = {"1005649": (210, 50, 50), "134": (0, 255, 255, 0), "2432": (50, 210, 50), "98765": 170,
                "555": (50, 50, 210), "3": (200, 180, 20), "77": (20, 180, 200)}


def build_food101(directory: Path) -> dict:
    """``directory/food-101/`` with images/<class>/<id>.jpg (one CMYK, one greyscale), meta/classes.txt, labels.txt,
    {train,test}.txt and {train,test}.json.

    Returns {"root": directory, "labels": {split: {key: labels}}, "colours": {key: RGB}, "size": (w, h)}.
    """
    folder = directory / "food-101"
    meta = folder / "meta"
    meta.mkdir(parents=True)
    (meta / "classes.txt").write_text("".join(c + "\n" for c in FOOD_CLASSES))
    (meta / "labels.txt").write_text("Apple pie\nBaby back ribs\nWaffles\n")
    expected, colours = {}, {}
    for split, entries in FOOD_SPLITS.items():
        (meta / f"{split}.json").write_text(json.dumps({c: [f"{c}/{i}" for i in ids] for c, ids in entries.items()}))
        (meta / f"{split}.txt").write_text("".join(f"{c}/{i}\n" for c, ids in entries.items() for i in ids))
        expected[split] = {}
        for name, ids in entries.items():
            for image_id in ids:
                colour = FOOD_COLOURS[image_id]
                mode = {4: "CMYK", 3: "RGB"}.get(len(colour), "L") if isinstance(colour, tuple) else "L"
                write_jpeg(folder / "images" / name / f"{image_id}.jpg", colour, size=(24, 18), mode=mode)
                key = f"food101_{name}_{image_id}"
                expected[split][key] = {"label": FOOD_CLASSES.index(name), "class_name": name}
                colours[key] = {"CMYK": (255, 0, 0), "L": (colour,) * 3}.get(mode, colour)  # CMYK 0,255,255,0 is red
    return {"root": directory, "labels": expected, "colours": colours, "size": (24, 18), "missing": "food-101/images",
            "lengths": {split: sum(map(len, entries.values())) for split, entries in FOOD_SPLITS.items()}}


# Every builder above, by dataset name (the ``build_NAME`` naming rule): the fixtures the registry is checked against.
BUILDERS = {name.removeprefix("build_"): value for name, value in dict(globals()).items()
            if name.startswith("build_") and callable(value)}
