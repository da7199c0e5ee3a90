"""Packing public datasets into shard sets: round trip, readers outside latentds, resume, determinism, errors."""

import io
import json
import tarfile

import pytest
import torch
import webdataset as wds
from click.testing import CliRunner
from PIL import Image

import public_fixtures as fx
from conftest import tree_bytes
from latentds.cli import main
from latentds.datasets.pack import pack_dataset
from latentds.datasets.public import dataset_names, open_dataset
from latentds.datasets.shards import load_shards
from latentds.datasets.transforms import ImageTransform
from latentds.shardsets.manifest import read_manifest, verify_shards

NAMES = dataset_names()  # every registered dataset; tests/test_public_datasets.py checks each has a fixture builder


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("public")
    roots = {}
    for name, build in fx.BUILDERS.items():
        (base / name).mkdir()
        roots[name] = build(base / name)["root"]
    return roots


@pytest.mark.parametrize("name", NAMES)
def test_pack_then_stream_gives_back_the_same_images_and_labels(roots, tmp_path, name):
    source = open_dataset(name, roots[name])
    report = pack_dataset(name, roots[name], tmp_path, size=16, shard_size=4, workers=1, progress=False)
    assert report.done == len(source) and verify_shards(tmp_path) == []
    manifest = read_manifest(tmp_path)
    assert manifest["count"] == len(source) and manifest["dataset"] == name and manifest["image_size"] == 16
    streamed = list(load_shards(tmp_path, value_range="0,1"))
    assert len(streamed) == len(source)
    transform = ImageTransform(size=16, crop="center", value_range="0,1")
    for i, item in enumerate(streamed):
        original = source[i]
        assert item["__key__"] == f"{i:09d}"
        assert item["labels"]["source_key"] == original["key"]
        assert {k: item["labels"][k] for k in original["labels"]} == json.loads(json.dumps(original["labels"]))
        assert torch.allclose(item["image"], transform(original["image"]), atol=1 / 255 + 1e-6)


def test_packed_shards_need_no_latentds_to_read(roots, tmp_path):
    pack_dataset("food101", roots["food101"], tmp_path, size=16, workers=1, progress=False)
    with tarfile.open(tmp_path / "food101-train-000000.tar") as tar:
        names = tar.getnames()
        labels = json.loads(tar.extractfile(names[0]).read())
        image = Image.open(io.BytesIO(tar.extractfile(names[1]).read()))
    assert names[0].endswith(".json") and names[1].endswith(".png")
    assert "class_name" in labels and image.mode == "RGB" and image.size == (16, 16)
    samples = list(wds.WebDataset(str(tmp_path / "food101-train-000000.tar"), shardshuffle=False)
                   .decode("rgb").to_tuple("png", "json"))
    assert len(samples) == read_manifest(tmp_path)["count"] and samples[0][0].shape == (16, 16, 3)


def test_greyscale_and_cmyk_sources_come_out_rgb(roots, tmp_path):
    pack_dataset("coco", roots["coco"], tmp_path, split="val", size=8, workers=1, progress=False)
    ds = wds.WebDataset(str(tmp_path / "coco-val-000000.tar"), shardshuffle=False).decode("pil").to_tuple("png")
    for (image,) in ds:
        assert image.mode == "RGB"


@pytest.mark.slow
def test_same_bytes_for_any_worker_count_and_resume_keeps_finished_shards(roots, tmp_path):
    one = tmp_path / "one"
    pack_dataset("celeba", roots["celeba"], one, split="all", size=8, shard_size=2, workers=1, progress=False)
    two = tmp_path / "two"
    pack_dataset("celeba", roots["celeba"], two, split="all", size=8, shard_size=2, workers=2, progress=False)
    assert tree_bytes(one) == tree_bytes(two)
    (two / "celeba-all-000001.tar").unlink()
    report = pack_dataset("celeba", roots["celeba"], two, split="all", size=8, shard_size=2, workers=1, progress=False)
    assert report.done == 2 and tree_bytes(one) == tree_bytes(two)


def test_keep_size_stores_original_sizes(roots, tmp_path):
    pack_dataset("utkface", roots["utkface"], tmp_path, split="all", size=None, workers=1, progress=False)
    source = open_dataset("utkface", roots["utkface"], "all")
    first = next(iter(wds.WebDataset(str(tmp_path / "utkface-all-000000.tar"), shardshuffle=False).decode("pil")
                      .to_tuple("png")))[0]
    assert first.size == source[0]["image"].size
    assert read_manifest(tmp_path)["skipped"] == len(source.skipped) > 0
    both = CliRunner().invoke(main, ["pack", "utkface", str(roots["utkface"]), "--size", "32", "--keep-size",
                                     "--out", str(tmp_path / "both")])  # contradictory: refused, not one ignored
    assert both.exit_code == 2 and "--size 32 and --keep-size: give one" in both.stderr
    assert not (tmp_path / "both").exists()


def test_cli_pack_and_its_errors(roots, tmp_path):
    runner = CliRunner()
    out = tmp_path / "s"
    result = runner.invoke(main, ["pack", "sprites", str(roots["sprites"]), "--out", str(out), "--split", "val",
                                  "--size", "16", "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "packed 42 images" in result.stdout
    info = runner.invoke(main, ["info", str(out)])
    assert "sprites, split 'val'" in info.stdout and "identity" in info.stdout
    bad = runner.invoke(main, ["pack", "celeba", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "does not exist" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    wrong = runner.invoke(main, ["pack", "food101", str(roots["celeba"]), "--out", str(tmp_path / "y")])
    assert wrong.exit_code == 2 and "expected" in wrong.stderr and not (tmp_path / "y").exists()
    split = runner.invoke(main, ["pack", "utkface", str(roots["utkface"]), "--split", "valid",
                                 "--out", str(tmp_path / "z")])
    assert split.exit_code == 2 and "choose one of: all, train, test" in split.stderr
