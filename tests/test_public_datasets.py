"""The public dataset loaders, on tiny fixtures built in the real on-disk layouts with the real quirks."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import latentds.datasets
import public_fixtures as fx
from latentds.cli import main
from latentds.datasets import public
from latentds.datasets.celeba import CelebA
from latentds.datasets.coco import Coco
from latentds.datasets.food101 import Food101
from latentds.datasets.public import REGISTRY, PublicDataset, dataset_class, dataset_names, open_dataset
from latentds.datasets.sprites import ANIMATIONS, Sprites
from latentds.datasets.utkface import UTKFace
from latentds.errors import DatasetLayoutError, InvalidParameterError

NAMES = dataset_names()  # every registered dataset (each needs a builder in public_fixtures; see below)
KEY = re.compile(r"[A-Za-z0-9_-]+")
UTK_TEST = {name for name in fx.UTKFACE_GOOD if int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 100 < 20}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """name -> what its fixture builder returned (root, lengths, missing, expected labels, ...)."""
    base = tmp_path_factory.mktemp("public")
    return {name: fx.BUILDERS[name](base / name) for name in NAMES if name in fx.BUILDERS}


def by_key(dataset: PublicDataset) -> dict[str, dict]:
    return {sample["key"]: sample for sample in dataset}


def colour(image: Image.Image) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(image).reshape(-1, 3).mean(axis=0).round())


def close(actual, expected, tolerance=6) -> bool:
    """JPEG keeps a solid colour within a few levels."""
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def file_mode(path) -> str:
    """The mode of an image file as stored (before any conversion)."""
    with Image.open(path) as image:
        return image.mode


def plain_json(value) -> bool:
    if type(value) is dict:
        return all(type(k) is str and plain_json(v) for k, v in value.items())
    if type(value) is list:
        return all(plain_json(v) for v in value)
    return type(value) in (int, float, str)


# --- every dataset -----------------------------------------------------------------------------------------------

def test_every_registered_dataset_has_a_fixture_builder_and_every_builder_a_dataset():
    assert set(dataset_names()) == set(fx.BUILDERS)
    assert {"sprites", "utkface", "celeba", "coco", "food101"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_builder_returns_root_lengths_and_missing_path(built, name):
    assert {"root", "lengths", "missing"} <= set(built[name])
    assert all(type(n) is int and n > 0 for n in built[name]["lengths"].values())


@pytest.mark.parametrize("name", NAMES)
def test_pack_help_names_every_dataset_with_its_root(name):
    result = CliRunner().invoke(main, ["pack", "--help"])
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and f" {name} " in text and " ".join(dataset_class(name).root_help.split()) in text
    assert "{" + "|".join(NAMES) + "}" in text  # the DATASET argument's choices


def test_the_cli_imports_no_dataset_module():
    code = "import sys; from latentds.cli import main; print(sorted(m for m in sys.modules if 'datasets.' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _discovery_reset(module_names):
    for module in module_names:
        sys.modules.pop(module, None)
    public.DATASET_MODULES.forget(*module_names)


@pytest.fixture
def throwaway_module(tmp_path, monkeypatch):
    """A new module file in the latentds.datasets package (an extra path entry) defining a dataset, and a module
    beside it that must not be imported; both, and the dataset's registration, are removed afterwards."""
    (tmp_path / "throwaway_faces.py").write_text(textwrap.dedent('''
        from latentds.datasets.public import PublicDataset
        from PIL import Image


        class ThrowawayFaces(PublicDataset, name="test_throwaway"):
            """Two grey squares.

            ``root`` is any existing directory; nothing is read from it.
            """

            splits = ("train", "test")

            def __len__(self):
                return 2

            def __getitem__(self, index):
                return {"key": f"throwaway_{index}", "image": Image.new("RGB", (4, 4), (index, 0, 0)),
                        "labels": {"index": index}}
    '''))
    (tmp_path / "throwaway_helpers.py").write_text("raise RuntimeError('a module without a dataset was imported')\n")
    monkeypatch.setattr(latentds.datasets, "__path__", [*latentds.datasets.__path__, str(tmp_path)])
    modules = ["latentds.datasets.throwaway_faces", "latentds.datasets.throwaway_helpers"]
    yield
    REGISTRY.pop("test_throwaway", None)
    _discovery_reset(modules)


def test_a_new_dataset_module_is_discovered_registered_listed_and_removed(throwaway_module, tmp_path):
    assert "test_throwaway" in dataset_names() and "latentds.datasets.throwaway_helpers" not in sys.modules
    dataset = open_dataset("test_throwaway", tmp_path, "test")
    assert type(dataset).__module__ == "latentds.datasets.throwaway_faces" and dataset.split == "test"
    assert [s["key"] for s in dataset] == ["throwaway_0", "throwaway_1"]
    assert dataset_class("test_throwaway").root_help == "any existing directory"
    runner = CliRunner()
    help_text = " ".join(runner.invoke(main, ["pack", "--help"]).output.split())
    assert "test_throwaway any existing directory" in help_text
    missing = runner.invoke(main, ["pack", "test_throwaway", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "test_throwaway root" in missing.stderr and "does not exist" in missing.stderr


def test_the_throwaway_dataset_left_nothing_behind():
    assert "test_throwaway" not in dataset_names() and set(dataset_names()) == set(fx.BUILDERS)


def test_a_second_dataset_with_a_taken_name_is_a_type_error_naming_both():
    with pytest.raises(TypeError, match=r"'sprites' is already registered by latentds\.datasets\.sprites\.Sprites; "
                                        r".*\.Copy must choose another name"):
        class Copy(PublicDataset, name="sprites"):  # noqa: F841
            root_help = "anywhere"
    assert dataset_class("sprites") is Sprites


def test_a_dataset_without_root_help_or_with_a_bad_name_is_refused():
    with pytest.raises(TypeError, match="declares no root_help"):
        class NoRoot(PublicDataset, name="test_no_root"):  # noqa: F841
            """No sentence about the root."""
    with pytest.raises(TypeError, match="must be lower-case"):
        class BadName(PublicDataset, name="Bad.Name"):  # noqa: F841
            root_help = "anywhere"
    assert "test_no_root" not in REGISTRY and "Bad.Name" not in REGISTRY


@pytest.mark.parametrize("name", NAMES)
def test_lengths_per_split_and_default_split(built, name):
    cls = type(open_dataset(name, built[name]["root"]))
    assert cls.name == name and cls.description and cls.citation
    lengths = built[name]["lengths"]
    assert set(cls.splits) == set(lengths)
    assert open_dataset(name, built[name]["root"]).split == cls.splits[0]
    assert {split: len(open_dataset(name, built[name]["root"], split)) for split in cls.splits} == lengths


@pytest.mark.parametrize("name", NAMES)
def test_samples_have_unique_dot_free_sorted_keys_rgb_images_and_plain_json_labels(built, name):
    for split in built[name]["lengths"]:
        dataset = open_dataset(name, built[name]["root"], split)
        samples = list(dataset)
        keys = [sample["key"] for sample in samples]
        assert len(set(keys)) == len(keys) and all(KEY.fullmatch(key) for key in keys)
        assert keys == [sample["key"] for sample in open_dataset(name, built[name]["root"], split)]
        for sample in samples:
            assert sample["image"].mode == "RGB"
            assert plain_json(sample["labels"]), sample["labels"]
            assert json.loads(json.dumps(sample["labels"])) == sample["labels"]


@pytest.mark.parametrize("name", NAMES)
def test_pickled_dataset_gives_the_same_samples(built, name):
    dataset = open_dataset(name, built[name]["root"], "test")
    first = dataset[0]  # fills any per-process cache before pickling
    copy = pickle.loads(pickle.dumps(dataset))
    for i in (0, len(dataset) - 1):
        original, again = dataset[i], copy[i]
        assert again["key"] == original["key"] and again["labels"] == original["labels"]
        assert np.array_equal(np.asarray(again["image"]), np.asarray(original["image"]))
    assert copy[0]["key"] == first["key"]


@pytest.mark.parametrize("name", NAMES)
def test_unknown_split_is_an_invalid_parameter(built, name):
    with pytest.raises(InvalidParameterError, match="no split 'validation'"):
        open_dataset(name, built[name]["root"], "validation")


@pytest.mark.parametrize("name", NAMES)
def test_wrong_root_names_the_expected_path_in_one_line(built, tmp_path, name):
    with pytest.raises(DatasetLayoutError) as error:
        open_dataset(name, tmp_path)
    message = str(error.value)
    assert str(tmp_path / built[name]["missing"]) in message and "\n" not in message
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        open_dataset(name, tmp_path / "missing")


# --- 2D Sprites --------------------------------------------------------------------------------------------------

def test_sprites_one_based_split_indices_read_file_i_minus_1(built):
    root = built["sprites"]["root"]
    assert not (root / "sprites_4.mat").exists()  # testidx = [4] must read sprites_3.mat
    for split, identities in built["sprites"]["splits"].items():
        samples = list(Sprites(root, split))
        assert sorted({s["labels"]["identity"] for s in samples}) == identities
        for sample in samples:
            labels = sample["labels"]
            attributes = [labels[a] for a in ("body", "sex", "hair", "armor", "arm", "greaves", "weapon")]
            assert attributes == fx.SPRITE_ATTRIBUTES[labels["identity"]]
    assert [s["labels"]["identity"] for s in Sprites(root, "train")][::42] == [0, 2]


def test_sprites_frames_are_column_major_60px_and_match_their_labels(built):
    blue = built["sprites"]["blue"]
    frames_seen: dict[tuple[int, int], int] = {}
    for sample in Sprites(built["sprites"]["root"], "train"):
        labels = sample["labels"]
        cell = ANIMATIONS.index((labels["animation"], labels["view"]))
        expected = fx.sprite_frame(blue[labels["identity"], cell, labels["frame"]])
        assert np.array_equal(np.asarray(sample["image"]), expected), sample["key"]
        frames_seen[labels["identity"], cell] = frames_seen.get((labels["identity"], cell), 0) + 1
    # frame counts come from the files (1-3 here), not from the 7/8/9/6/13/6 table
    assert frames_seen == {(i, cell): fx.sprite_frame_count(cell) for i in (0, 2) for cell in range(21)}


def test_sprites_animation_and_view_names(built):
    labels = {s["key"]: s["labels"] for s in Sprites(built["sprites"]["root"], "test")}
    assert labels["sprites_003_thrust_left_01"] == {
        "identity": 3, "body": 0, "sex": 1, "hair": 6, "armor": 0, "arm": 1, "greaves": 0, "weapon": 1,
        "animation": "thrust", "view": "left", "frame": 1}  # cell 5 = thrust seen from the left, 2 frames
    hurt = [label for label in labels.values() if label["animation"] == "hurt"]
    assert {label["view"] for label in hurt} == {"front"} and len(hurt) == fx.sprite_frame_count(20)
    assert list(labels) == sorted(labels, key=lambda k: (labels[k]["identity"], ANIMATIONS.index(
        (labels[k]["animation"], labels[k]["view"])), labels[k]["frame"]))


def test_sprites_holds_no_pixels_and_accepts_the_archive_root(built):
    root = built["sprites"]["root"]
    dataset = Sprites(root, "val")
    dataset[0]
    assert len(pickle.dumps(dataset)) < 20_000  # an animation's pixels alone would be ~30 KB per frame
    archive = Sprites(root.parent.parent, "val")  # the folder holding data/sprites
    assert [s["key"] for s in archive] == [s["key"] for s in dataset]


# --- UTKFace -----------------------------------------------------------------------------------------------------

def test_utkface_labels_images_and_malformed_names_skipped(built):
    info = built["utkface"]
    dataset = UTKFace(info["root"])
    samples = by_key(dataset)
    assert {k: s["labels"] for k, s in samples.items()} == info["labels"]
    assert sorted(dataset.skipped) == sorted(info["malformed"]) and len(dataset.skipped) == 6
    for key, sample in samples.items():
        assert sample["image"].size == (20, 20) and close(colour(sample["image"]), info["colours"][key]), key
    grey = info["root"] / "UTKFace" / "116_1_4_20170120134921760.jpg.chip.jpg"
    assert file_mode(grey) == "L" and samples["utkface_116_1_4_20170120134921760"]["image"].mode == "RGB"


def test_utkface_split_is_by_file_name_hash_and_stable(built, tmp_path):
    root = built["utkface"]["root"]
    train, test = (set(by_key(UTKFace(root, split))) for split in ("train", "test"))
    files = built["utkface"]["files"]
    assert {files[k] for k in test} == UTK_TEST and train.isdisjoint(test) and train | test == set(files)
    assert "utkface_30_0_1_20170116000000030" in train  # bucket 20 is the first train bucket
    # a different set of files written in another order: the files they share keep their split
    kept = sorted(files.values())[::-2]
    for name in kept:
        (tmp_path / "UTKFace").mkdir(exist_ok=True)
        shutil.copy(root / "UTKFace" / name, tmp_path / "UTKFace" / name)
    smaller_test = set(by_key(UTKFace(tmp_path / "UTKFace", "test")))
    assert smaller_test == {k for k in test if files[k] in kept}
    assert UTKFace(tmp_path / "UTKFace").skipped == []


# --- CelebA ------------------------------------------------------------------------------------------------------

def test_celeba_parses_crlf_and_spaced_files(built):
    info = built["celeba"]
    raw = (info["root"] / "celeba" / "list_attr_celeba.txt").read_bytes()
    assert raw.split(b"\r\n")[1].endswith(b" ") and b"  1" in raw  # the fixture has the quirks it claims
    samples = by_key(CelebA(info["root"], "all"))
    assert {k: s["labels"] for k, s in samples.items()} == info["labels"]
    assert len(samples["celeba_000001"]["labels"]) == 40 + 4
    for key, sample in samples.items():
        assert sample["image"].size == info["size"] and close(colour(sample["image"]), info["colours"][key]), key
    assert list(by_key(CelebA(info["root"], "valid"))) == ["celeba_000004", "celeba_000005"]


def test_celeba_without_optional_files_and_from_its_own_folder(tmp_path):
    info = fx.build_celeba(tmp_path, extras=False)
    dataset = CelebA(tmp_path / "celeba", "test")  # the celeba folder itself as root
    assert [(s["key"], s["labels"]) for s in dataset] == [("celeba_000006", info["labels"]["celeba_000006"])]
    assert "landmarks" not in dataset[0]["labels"] and "bbox" not in dataset[0]["labels"]


def test_celeba_image_missing_from_attributes_is_a_layout_error(tmp_path):
    fx.build_celeba(tmp_path, extras=False)
    with open(tmp_path / "celeba" / "list_eval_partition.txt", "ab") as f:
        f.write(b"000007.jpg 0\r\n")
    with pytest.raises(DatasetLayoutError, match="000007.jpg"):
        CelebA(tmp_path, "train")


# --- COCO --------------------------------------------------------------------------------------------------------

def test_coco_labels_boxes_captions_and_images_without_annotations(built):
    info = built["coco"]
    for split, expected in info["labels"].items():
        samples = by_key(Coco(info["root"], split))
        assert {k: s["labels"] for k, s in samples.items()} == expected, split
        assert list(samples) == sorted(expected)
        for key, sample in samples.items():
            assert sample["image"].size == (16, 12) and close(colour(sample["image"]), info["colours"][key]), key
    empty = Coco(info["root"], "val")[2]["labels"]  # 632: in the instances file's images but has no boxes
    assert empty["image_id"] == 632 and empty["boxes"] == empty["categories"] == empty["category_ids"] == []


def test_coco_greyscale_jpeg_comes_out_rgb(built):
    root = built["coco"]["root"]
    assert file_mode(root / "val2017" / "000000000285.jpg") == "L"
    sample = by_key(Coco(root, "val"))["coco_000000000285"]
    assert sample["image"].mode == "RGB" and close(colour(sample["image"]), (100, 100, 100))


def test_coco_without_any_annotation_file_names_it(built, tmp_path):
    shutil.copytree(built["coco"]["root"] / "val2017", tmp_path / "val2017")
    with pytest.raises(DatasetLayoutError, match="instances_val2017.json or captions_val2017.json"):
        Coco(tmp_path, "val")


# --- Food-101 ----------------------------------------------------------------------------------------------------

def test_food101_labels_follow_classes_txt(built):
    info = built["food101"]
    for split, expected in info["labels"].items():
        samples = by_key(Food101(info["root"], split))
        assert {k: s["labels"] for k, s in samples.items()} == expected
    # waffles is line 2 of classes.txt even where the split's JSON has only two classes
    assert by_key(Food101(info["root"], "test"))["food101_waffles_3"]["labels"] == {"label": 2, "class_name": "waffles"}


def test_food101_cmyk_and_greyscale_jpegs_come_out_rgb(built):
    info = built["food101"]
    images = info["root"] / "food-101" / "images"
    assert file_mode(images / "apple_pie" / "134.jpg") == "CMYK"
    assert file_mode(images / "waffles" / "98765.jpg") == "L"
    for key, sample in by_key(Food101(info["root"], "train")).items():
        assert sample["image"].mode == "RGB" and sample["image"].size == info["size"]
        assert close(colour(sample["image"]), info["colours"][key]), key


def test_food101_reads_txt_lists_without_json_and_its_own_folder_as_root(built, tmp_path):
    shutil.copytree(built["food101"]["root"] / "food-101", tmp_path / "food-101")
    (tmp_path / "food-101" / "meta" / "test.json").unlink()
    samples = by_key(Food101(tmp_path / "food-101", "test"))
    assert {k: s["labels"] for k, s in samples.items()} == built["food101"]["labels"]["test"]
