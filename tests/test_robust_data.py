"""Damaged and hostile data on the reading side: flipped bytes cost only their sample and never crash a process,
names in a manifest are never URLs or paths outside the set, an unfinished render is refused, and a seeded fuzz."""

import io
import json
import random
import re
import struct
import sys
import tarfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import tree_bytes
from latentds.cli import main
from latentds.datasets.shards import ShardWarning, decode_sample, load_shards, resize_for
from latentds.datasets.transforms import ImageTransform
from latentds.errors import ShardError
from latentds.render import RenderSpec, render_shards
from latentds.render import job as job_module
from latentds.shardsets.encoders import encode_png


def _keys(items):
    return [k for item in items for k in (item["__key__"] if isinstance(item["__key__"], list) else [item["__key__"]])]


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name, data in tree_bytes(src).items():
        (dst / name).write_bytes(data)
    return dst


def _members(shard: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(shard) as tar:
        return {m.name: m for m in tar.getmembers()}


def _flip(path: Path, offset: int, mask: int = 0x55) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def _print_warnings(worker_id: int) -> None:
    """worker_init_fn: a worker forked inside pytest records warnings into a list it never returns; print them."""
    warnings.simplefilter("always")
    warnings.showwarning = lambda message, category, *rest: print(f"{category.__name__}: {message}", file=sys.stderr)


def _loader(ds, workers: int):
    return torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, worker_init_fn=_print_warnings)


def _lost(text: str) -> dict[str, int]:
    """{shard file name: samples lost} from ShardWarning lines (captured stderr of DataLoader workers)."""
    lost = {}
    for name, n in re.findall(r"shard \S*/([^/\s]+\.tar): (\d+) of \d+ samples lost", text):
        lost[name] = lost.get(name, 0) + int(n)
    return lost


# --- 1. a flipped byte in a PNG or a JSON member --------------------------------------------------------------------

@pytest.mark.slow
def test_a_flipped_png_byte_costs_only_its_sample_and_never_crashes(phi_set, tmp_path, capfd):
    """torchvision's decoder segfaulted on this (the worker died; with num_workers=0 the whole process)."""
    _, out = phi_set
    damaged = _copy(out, tmp_path / "d")
    shard = damaged / "phi-000001.tar"
    png = _members(shard)["000000013.png"]
    _flip(shard, png.offset_data + png.size // 2)
    # In a DataLoader worker, so that the old crash fails this test instead of killing pytest.
    keys = _keys(_loader(load_shards(damaged), 1))
    assert keys == [f"{i:09d}" for i in range(40) if i != 13]
    err = capfd.readouterr().err
    assert _lost(err) == {"phi-000001.tar": 1} and "sample 000000013" in err
    with pytest.raises(ShardError, match=r"phi-000001\.tar: sample 000000013"):
        list(_loader(load_shards(damaged, strict=True), 1))


@pytest.mark.slow
def test_a_flipped_json_byte_costs_only_its_sample(phi_set, tmp_path):
    """It used to end the stream with a JSONDecodeError."""
    _, out = phi_set
    damaged = _copy(out, tmp_path / "d")
    shard = damaged / "phi-000002.tar"
    member = _members(shard)["000000025.json"]
    data = bytearray(shard.read_bytes())
    data[member.offset_data] = ord("x")  # the opening brace
    shard.write_bytes(bytes(data))
    with pytest.warns(ShardWarning, match=r"phi-000002\.tar: 1 of 10 samples lost \(sample 000000025: "
                                          r"JSONDecodeError"):
        keys = _keys(load_shards(damaged, batch_size=3, partial=True))
    assert keys == [f"{i:09d}" for i in range(40) if i != 25]
    with pytest.raises(ShardError, match=r"sample 000000025"):
        list(load_shards(damaged, strict=True))


def _good_png() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    pixels[:8] = 40
    return encode_png(pixels)


def _rewrite_idat(png: bytes, change) -> bytes:
    """The PNG with its image data inflated, changed, deflated again and every CRC right: only a full check
    (not CRCs alone) tells it from a sound one."""
    length, = struct.unpack(">I", png[33:37])
    raw = bytearray(zlib.decompress(png[41:41 + length]))
    packed = zlib.compress(bytes(change(raw)))
    chunk = struct.pack(">I", len(packed)) + b"IDAT" + packed + struct.pack(">I", zlib.crc32(b"IDAT" + packed))
    return png[:33] + chunk + png[45 + length:]


def _flip_keeping_crcs(png: bytes) -> bytes:
    """A byte of the compressed image data flipped and the chunk CRC recomputed: CRCs alone cannot tell."""
    length, = struct.unpack(">I", png[33:37])
    data = bytearray(png[41:41 + length])
    data[length // 2] ^= 0x55
    chunk = struct.pack(">I", length) + b"IDAT" + bytes(data) + struct.pack(">I", zlib.crc32(b"IDAT" + bytes(data)))
    return png[:33] + chunk + png[45 + length:]


def _bad_filter(raw):
    raw[0] = 9
    return raw


BAD_PNGS = {
    "a flipped data byte": lambda p: p[:200] + bytes([p[200] ^ 0x55]) + p[201:],
    "a flipped byte, CRC recomputed": _flip_keeping_crcs,
    "an invalid row filter, CRCs right": lambda p: _rewrite_idat(p, _bad_filter),
    "too little image data, CRCs right": lambda p: _rewrite_idat(p, lambda raw: raw[:300]),
    "truncated": lambda p: p[: len(p) // 2],
    "not a PNG": lambda p: b"GIF89a" + p[6:],
}


@pytest.mark.parametrize("damage", sorted(BAD_PNGS))
def test_only_fully_checked_pngs_reach_the_native_decoder(damage):
    from latentds.shardsets.png import png_is_plain

    good = _good_png()
    assert png_is_plain(good)
    bad = BAD_PNGS[damage](good)
    assert not png_is_plain(bad)
    sample = {"__key__": "000000000", "png": bad, "json": b"{}"}
    with pytest.raises(Exception) as raised:  # what PIL raises; never a crash of this process
        decode_sample(sample, ImageTransform())
    assert not isinstance(raised.value, (SystemExit, KeyboardInterrupt))


def test_unusual_but_sound_pngs_still_decode_the_careful_way():
    palette = Image.new("P", (5, 4))
    palette.putpalette([10, 20, 30] * 256)
    for image in [Image.new("RGB", (5, 4), (1, 2, 3)).convert("L"), palette,
                  Image.new("RGBA", (5, 4), (9, 8, 7, 255))]:
        buf = io.BytesIO()
        image.save(buf, format="PNG", pnginfo=None)
        out = decode_sample({"__key__": "k", "png": buf.getvalue()}, ImageTransform(value_range="0,1"))
        assert out["image"].shape == (3, 4, 5) and out["image"].dtype == torch.uint8


# --- 2. names in a manifest are never URLs or paths outside the set -------------------------------------------------

@pytest.mark.parametrize("name", ["pipe:touch PWNED", "../outside.tar", "/etc/passwd", "sub/../../x.tar",
                                  "https://example.com/x.tar"])
def test_shard_names_from_a_manifest_are_never_commands_urls_or_outside_paths(phi_set, tmp_path, monkeypatch,
                                                                              name):
    _, out = phi_set
    data = _copy(out, tmp_path / "set")
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["shards"][1]["name"] = name
    (data / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.chdir(data)
    with pytest.raises(ShardError, match="not a plain file name inside the set"):
        list(load_shards("."))
    with pytest.raises(ShardError, match="not a plain file name inside the set"):
        resize_for(".", 64)  # what `latentds train --data .` calls first
    assert not (data / "PWNED").exists() and not (tmp_path / "PWNED").exists()
    info = CliRunner().invoke(main, ["info", "."])
    assert info.exit_code == 2 and "not a plain file name" in info.stderr and "Traceback" not in info.output


def test_a_pipe_url_the_user_writes_still_works(phi_set):
    _, out = phi_set
    assert _keys(load_shards(f"pipe:cat {out / 'phi-000003.tar'}")) == [f"{i:09d}" for i in range(30, 40)]


# --- 3. an unfinished render is refused ------------------------------------------------------------------------------

class _Killed(Exception):
    pass


@pytest.fixture
def unfinished(phi_set, tmp_path, monkeypatch):
    """A render of 40 images stopped after 2 of its 4 shards (its progress file and 20 images, no manifest)."""
    spec, _ = phi_set
    real = job_module.write_shard

    def stops_on_third(*args, **kwargs):
        if args[1] == 2:
            raise _Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(job_module, "write_shard", stops_on_third)
    with pytest.raises(_Killed):
        render_shards(spec, tmp_path / "u", workers=1, progress=False)
    monkeypatch.setattr(job_module, "write_shard", real)
    return tmp_path / "u"


def test_an_unfinished_render_is_refused_by_load_shards_and_info(unfinished):
    message = r"unfinished shard set \(20 of 40 images written.*`latentds render --phi --n 40 --size 16 .*--out "
    with pytest.raises(ShardError, match=message):
        load_shards(unfinished)
    info = CliRunner().invoke(main, ["info", str(unfinished)])
    assert info.exit_code == 2 and re.search(message, info.stderr) and len(info.stderr.strip().splitlines()) == 1
    # Asking for the finished shards by name is the explicit way to use them as they are.
    assert len(_keys(load_shards(str(unfinished / "phi-{000000..000001}.tar")))) == 20


# --- 8. a seeded fuzz ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "set"
    render_shards(RenderSpec("phi", n=480, size=16, shard_size=60, seed=3), out, workers=1, progress=False)
    return out


@pytest.mark.slow
def test_fuzz_flipped_bytes_never_crash_and_every_loss_is_reported(fuzz_set, tmp_path, capfd):
    rng = random.Random(20240909)
    damaged = _copy(fuzz_set, tmp_path / "fuzzed")
    touched: set[str] = set()
    flips = 0
    for shard in sorted(damaged.glob("*.tar")):
        members = list(_members(shard).values())
        data = bytearray(shard.read_bytes())
        for _ in range(40):
            member = rng.choice(members)
            region = rng.choice(["header", "data", "data"])
            if region == "header":
                offset = member.offset + rng.randrange(512)
            else:
                offset = member.offset_data + rng.randrange(member.size)
            data[offset] ^= rng.randrange(1, 256)
            touched.add(member.name.split(".")[0])
            flips += 1
        shard.write_bytes(bytes(data))
    assert flips >= 300
    ds = load_shards(damaged, batch_size=8, partial=True, shuffle=32, seed=1)
    keys = _keys(_loader(ds, 2))  # a crashed worker would raise here
    err = capfd.readouterr().err
    assert len(keys) == len(set(keys)), "a sample was delivered twice"
    intact = {f"{i:09d}" for i in range(480)} - touched
    assert intact <= set(keys), "an intact sample was lost"
    assert 100 < len(touched) and len(keys) < 480
    assert sum(_lost(err).values()) == 480 - len(keys), "a loss went unreported (or was reported twice)"
