"""Hostile public-dataset roots packed (issue 21): nothing outside ROOT is read, a FIFO never blocks, a symlink loop,
absurd numbers and names are one line or a reported skip, never a traceback, a hang or a bomb; the dataset card
escapes what it quotes; a symlink planted as the lock file is never written through. Every root is built here by
the test itself (tests/public_fixtures.py), bounded in time (``within``) and, for the bombs, in memory."""

import json
import os
import textwrap

import h5py
import numpy as np
import pytest

import public_fixtures as fx
from hostile import run_bounded, within
from latentds.datasets.pack import pack_dataset
from latentds.datasets.public import open_dataset
from latentds.errors import DatasetLayoutError, OutputDirectoryError
from latentds.shardsets.lock import LOCK, DirectoryLock
from latentds.shardsets.manifest import read_manifest
from cli_helpers import one_line_error, run


def pack(name, root, out, split, **kwargs):
    with within(60):
        return pack_dataset(name, root, out, split=split, size=8, shard_size=4, workers=1, progress=False, **kwargs)


def secret(tmp_path):
    """A JPEG outside every root: reading it into a pack is the bug."""
    path = tmp_path / "outside" / "secret.jpg"
    fx.write_jpeg(path, (1, 2, 3))
    return path


# --- files outside ROOT -------------------------------------------------------------------------------------------

def test_coco_file_names_leaving_the_image_folder_are_skipped_never_read(tmp_path):
    fx.build_coco(tmp_path / "coco")
    outside = secret(tmp_path)
    notes = tmp_path / "coco" / "annotations" / "instances_val2017.json"
    data = json.loads(notes.read_text())
    data["images"] += [fx.coco_image(900) | {"file_name": "../../outside/secret.jpg"},
                       fx.coco_image(901) | {"file_name": str(outside)}]
    notes.write_text(json.dumps(data))
    (tmp_path / "coco" / "val2017" / "000000000902.jpg").symlink_to(outside)  # a symlink out of ROOT
    data["images"].append(fx.coco_image(902))
    notes.write_text(json.dumps(data))
    pack("coco", tmp_path / "coco", tmp_path / "out", "val")
    manifest = read_manifest(tmp_path / "out")
    assert manifest["count"] == 3 and manifest["skipped"] == 2  # the two names; the symlink is a reported loss
    assert [d["file"] for d in manifest["damaged"]] == [str(tmp_path / "coco" / "val2017" / "000000000902.jpg")]
    assert "outside the dataset root" in manifest["damaged"][0]["error"]


def test_food101_entries_with_dotdot_are_skipped_never_read(tmp_path):
    fx.build_food101(tmp_path / "f")
    secret(tmp_path)
    meta = tmp_path / "f" / "food-101" / "meta" / "train.json"
    entries = json.loads(meta.read_text())
    entries["apple_pie"] += ["apple_pie/../../../../outside/secret", "/etc/hostname", "waffles/../../meta/x"]
    meta.write_text(json.dumps(entries))
    pack("food101", tmp_path / "f", tmp_path / "out", "train")
    manifest = read_manifest(tmp_path / "out")
    assert manifest["count"] == 4 and manifest["skipped"] == 3 and "damaged" not in manifest


def test_a_fifo_among_the_images_is_skipped_and_never_blocks(tmp_path):
    """A Food-101 image that was a FIFO blocked pack forever."""
    fx.build_food101(tmp_path / "f")
    image = tmp_path / "f" / "food-101" / "images" / "waffles" / "98765.jpg"
    image.unlink()
    os.mkfifo(image)
    pack("food101", tmp_path / "f", tmp_path / "out", "train")
    manifest = read_manifest(tmp_path / "out")
    assert manifest["count"] == 3 and [d["file"] for d in manifest["damaged"]] == [str(image)]
    assert "not a regular file" in manifest["damaged"][0]["error"]


# --- UTKFace names -----------------------------------------------------------------------------------------------

def test_utkface_symlink_loops_odd_digits_and_ages_beyond_the_table_are_skipped(tmp_path):
    fx.build_utkface(tmp_path / "u")
    folder = tmp_path / "u" / "UTKFace"
    (folder / "33_0_1_20170101000000001.jpg.chip.jpg").symlink_to("33_0_1_20170101000000001.jpg.chip.jpg")
    (folder / "loop").symlink_to("loop")
    for name in ("\u0663\u0663_0_1_20170101000000002.jpg.chip.jpg",  # Arabic-Indic 33
                 "\uff13\uff13_0_1_20170101000000003.jpg.chip.jpg",  # fullwidth 33
                 "999_0_1_20170101000000004.jpg.chip.jpg", "117_1_1_20170101000000005.jpg.chip.jpg"):
        fx.write_jpeg(folder / name, (9, 9, 9), size=(20, 20))
    dataset = open_dataset("utkface", tmp_path / "u", "all")
    assert len(dataset) == len(fx.UTKFACE_GOOD)
    assert all(0 <= dataset[i]["labels"]["age"] <= 116 for i in range(len(dataset)))
    assert len(dataset.skipped) == len(fx.UTKFACE_MALFORMED) + 5
    result = run("pack", "utkface", tmp_path / "u", "--split", "all", "--size", 8, "--workers", 1, "--out",
                 tmp_path / "out", "--quiet")
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert read_manifest(tmp_path / "out")["skipped"] == len(fx.UTKFACE_MALFORMED) + 5


def test_a_utkface_image_linking_out_of_root_is_a_reported_loss(tmp_path):
    fx.build_utkface(tmp_path / "u")
    link = tmp_path / "u" / "UTKFace" / "33_0_1_20170101000000001.jpg.chip.jpg"
    link.symlink_to(secret(tmp_path))
    pack("utkface", tmp_path / "u", tmp_path / "out", "all")
    damaged = read_manifest(tmp_path / "out")["damaged"]
    assert [d["file"] for d in damaged] == [str(link)] and "outside the dataset root" in damaged[0]["error"]


# --- CelebA numbers and names ------------------------------------------------------------------------------------

def _celeba_attribute_file(root):
    return root / "celeba" / "list_attr_celeba.txt"


def test_celeba_absurd_attribute_values_are_one_line(tmp_path):
    root = fx.build_celeba(tmp_path / "c")["root"]
    path = _celeba_attribute_file(root)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(" 1", " 99999999999", 1).replace("-1", "99999999999", 1)
    path.write_text("\n".join(lines) + "\n")
    result = run("pack", "celeba", root, "--size", 8, "--workers", 1, "--out", tmp_path / "out", "--quiet")
    assert one_line_error(result, "expected integers", "list_attr_celeba.txt")


@pytest.mark.parametrize("bad", ["<script>alert(1)</script>", "a.b", "Smiling", "identity", "a|b"])
def test_celeba_attribute_names_the_loader_would_refuse_are_refused_at_pack_time(tmp_path, bad):
    root = fx.build_celeba(tmp_path / "c")["root"]
    path = _celeba_attribute_file(root)
    lines = path.read_text().splitlines()
    names = lines[1].split()
    names[0] = bad  # "Smiling" is then given twice
    lines[1] = " ".join(names) + " "
    path.write_text("\n".join(lines) + "\n")
    result = run("pack", "celeba", root, "--size", 8, "--workers", 1, "--out", tmp_path / "out", "--quiet")
    assert one_line_error(result, "celeba: attribute", "list_attr_celeba.txt")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_dataset_card_escapes_what_it_quotes(tmp_path, monkeypatch):
    """Attribute names and source file names reach README.md: no tag survives, no table is broken."""
    from latentds.datasets import celeba

    monkeypatch.setattr(celeba, "check_attribute_names", lambda names, file: None)  # a loader that lets them in
    from latentds.datasets import pack as pack_module
    monkeypatch.setattr(pack_module, "check_factor_table", lambda dataset: None)
    root = fx.build_celeba(tmp_path / "c")["root"]
    path = _celeba_attribute_file(root)
    lines = path.read_text().splitlines()
    names = lines[1].split()
    names[0], names[1] = "<script>alert(1)</script>", "<img/src=x/onerror=alert(1)>|x"
    lines[1] = " ".join(names) + " "
    path.write_text("\n".join(lines) + "\n")
    pack("celeba", root, tmp_path / "out", "train")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "&#60;script&#62;" in card and "<script" not in card and "<img" not in card
    table = [line for line in card.splitlines() if line.startswith("| ")]
    assert table and all(line.count("|") == 7 for line in table)  # 6 cells each: no cell broken by a "|"


# --- Sprites bombs -------------------------------------------------------------------------------------------------

def test_sprites_nan_indices_and_string_frames_are_one_line(tmp_path):
    import scipy.io

    root = fx.build_sprites(tmp_path / "s")["root"]
    splits = {k: np.array([v], np.float64) for k, v in fx.SPRITE_SPLITS.items()}
    splits["trainidx"][0, 0] = np.nan
    scipy.io.savemat(root / "sprites_splits.mat", splits)
    result = run("pack", "sprites", root, "--size", 8, "--workers", 1, "--out", tmp_path / "o1", "--quiet")
    assert one_line_error(result, "whole 1-based character numbers", "sprites_splits.mat")

    root = fx.build_sprites(tmp_path / "s2")["root"]
    with h5py.File(root / "sprites_2.mat", "r+") as f:
        del f["#refs#"]["s0"]
        f["sprites"][0, 0] = f["#refs#"].create_dataset("s0", data=np.full((2, 10800), b"x", "S1")).ref
    result = run("pack", "sprites", root, "--size", 8, "--workers", 1, "--out", tmp_path / "o2", "--quiet")
    assert one_line_error(result, "frames of numbers", "sprites_2.mat")


@pytest.mark.parametrize("frames", [10**6, 10**9])
@pytest.mark.slow
def test_sprites_declaring_absurd_frame_counts_are_refused_before_allocating(tmp_path, frames):
    """A declared 10^6-10^9 frames made an 80 GiB allocation (7.7 GB RSS) before a MemoryError; run in a child
    limited to 3 GiB of address space and 60 s, so a regression fails this test instead of the machine."""
    root = fx.build_sprites(tmp_path / "s")["root"]
    with h5py.File(root / "sprites_2.mat", "r+") as f:  # chunked and never written: a tiny file declaring it all
        f["sprites"][0, 0] = f["#refs#"].create_dataset("huge", shape=(frames, 10800), dtype="f8",
                                                        chunks=(1024, 10800)).ref
    assert (root / "sprites_2.mat").stat().st_size < 10_000_000
    code = textwrap.dedent(f"""
        import sys
        from latentds.cli import main
        sys.argv = ["latentds", "pack", "sprites", {str(root)!r}, "--size", "8", "--workers", "1", "--out",
                    {str(tmp_path / "out")!r}, "--quiet"]
        main()
    """)
    result = run_bounded(code, seconds=120, memory_gb=3)
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and f"{frames:,} frames" in result.stderr


# --- the lock file -------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_symlink_planted_as_the_lock_file_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("a user's file\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).symlink_to(victim)
    with pytest.raises(OutputDirectoryError, match="symbolic link"):
        DirectoryLock(out, purpose="pack").acquire()
    fx.build_utkface(tmp_path / "u")
    result = run("pack", "utkface", tmp_path / "u", "--split", "all", "--size", 8, "--workers", 1, "--out", out,
                 "--quiet")
    assert one_line_error(result, LOCK, "symbolic link")
    assert victim.read_text() == "a user's file\n" and (out / LOCK).is_symlink()
    (out / LOCK).unlink()
    os.mkfifo(out / LOCK)  # anything but a regular file is refused too, without blocking
    with within(10), pytest.raises(OutputDirectoryError, match="not a regular file"):
        DirectoryLock(out, purpose="pack").acquire()


def test_deeply_nested_annotation_files_are_one_line(tmp_path):
    fx.build_coco(tmp_path / "coco")
    (tmp_path / "coco" / "annotations" / "instances_val2017.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(DatasetLayoutError, match="nested too deeply"):
        open_dataset("coco", tmp_path / "coco", "val")
    fx.build_food101(tmp_path / "f")
    (tmp_path / "f" / "food-101" / "meta" / "train.json").write_text("{\"a\":" * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(DatasetLayoutError, match="train.json"):
        open_dataset("food101", tmp_path / "f", "train")
