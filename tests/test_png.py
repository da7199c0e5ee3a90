"""PNG members: inflated and checked once, unfiltered by PIL, the pixels torchvision's decoder gives; damage anywhere
is refused (the sample dropped and reported), never a crash; the float conversion is the old one, bit for bit."""

import io
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from latentds.datasets.shards import ShardWarning, decode_sample, load_shards
from latentds.datasets.transforms import ImageTransform, to_float
from latentds.errors import DamagedSampleError
from latentds.shardsets.encoders import encode_json, encode_png
from latentds.shardsets.png import decode_plain_png, plain_png, png_is_plain


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def _torchvision(png: bytes) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_image(torch.frombuffer(bytearray(png), dtype=torch.uint8), mode=ImageReadMode.RGB)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(5, 4), (64, 64), (230, 150)])  # 230x150 RGB(A): more than one stored block
def test_plain_pngs_decode_to_the_pixels_torchvision_gives(mode, size):
    rng = np.random.default_rng(len(mode) * size[0])
    w, h = size
    noise = rng.integers(0, 256, (h, w, len(mode)), dtype=np.uint8)
    for pixels in (noise, np.cumsum(noise, axis=1, dtype=np.uint8) // 8):  # every row filter gets chosen
        png = _png(pixels[..., 0] if mode == "L" else pixels, mode)
        ours = decode_plain_png(png)
        assert ours is not None and ours.shape == (h, w, 3) and ours.dtype == np.uint8
        assert torch.equal(torch.from_numpy(ours).permute(2, 0, 1), _torchvision(png))


def test_a_render_decodes_as_torchvision_decodes_it(phi_set):
    _, out = phi_set
    from latentds.datasets.tarstream import tar_samples

    shard = sorted(out.glob("*.tar"))[0]
    with open(shard, "rb") as f:
        pngs = [s["png"] for s in tar_samples(f, str(shard))]
    assert pngs and all(torch.equal(torch.from_numpy(decode_plain_png(p)).permute(2, 0, 1), _torchvision(p))
                        for p in pngs)


def _small_png() -> bytes:
    rng = np.random.default_rng(3)
    return encode_png(np.cumsum(rng.integers(0, 40, (12, 10, 3), dtype=np.uint8), axis=0, dtype=np.uint8))


def test_a_byte_flipped_anywhere_is_refused_and_never_decoded():
    png = _small_png()
    original = torch.from_numpy(decode_plain_png(png)).permute(2, 0, 1)
    for pos in range(len(png)):
        for flip in (0x01, 0x80, 0xFF):
            bad = png[:pos] + bytes([png[pos] ^ flip]) + png[pos + 1:]
            assert not png_is_plain(bad), (pos, flip)
            if pos >= 8:  # past the signature the check itself names the damage
                with pytest.raises(DamagedSampleError):
                    plain_png(bad)
            with pytest.raises(Exception) as raised:  # never pixels, never a crash of this process
                decode_sample({"__key__": "k", "png": bad}, ImageTransform())
            assert not isinstance(raised.value, (SystemExit, KeyboardInterrupt))
    assert torch.equal(decode_sample({"__key__": "k", "png": png}, ImageTransform(value_range="0,1"))["image"],
                       original)


def _with_idat(png: bytes, stream: bytes) -> bytes:
    """``png`` (one IDAT) with that chunk's data replaced by ``stream``, its CRC made right."""
    length, = struct.unpack(">I", png[33:37])
    chunk = struct.pack(">I", len(stream)) + b"IDAT" + stream + struct.pack(">I", zlib.crc32(b"IDAT" + stream))
    return png[:33] + chunk + png[45 + length:]


def _crafted() -> dict[str, bytes]:
    """Image data built with right chunk CRCs around a bad zlib stream: each makes libpng fail (torchvision 0.29:
    a segmentation fault)."""
    png = _small_png()
    length, = struct.unpack(">I", png[33:37])
    stream = png[41:41 + length]
    rows = zlib.decompress(stream)
    flipped = bytearray(stream)
    flipped[len(flipped) // 2] ^= 0x55
    bad_filter = bytearray(rows)
    bad_filter[0] = 9
    return {"a flipped data byte": _with_idat(png, bytes(flipped)),
            "a wrong Adler-32": _with_idat(png, stream[:-1] + bytes([stream[-1] ^ 1])),
            "a damaged zlib header": _with_idat(png, bytes([stream[0] ^ 1]) + stream[1:]),
            "a cut stream": _with_idat(png, stream[:len(stream) // 2]),
            "a row filter of 9": _with_idat(png, zlib.compress(bytes(bad_filter))),
            "too little data": _with_idat(png, zlib.compress(rows[:-7])),
            "too much data": _with_idat(png, zlib.compress(rows + b"\0" * 31)),
            "data after the stream": _with_idat(png, stream + b"\0\0")}


@pytest.mark.parametrize("case", sorted(_crafted()))
def test_image_data_crafted_with_right_crcs_is_refused(case):
    with pytest.raises(DamagedSampleError, match="image data"):
        plain_png(_crafted()[case])


@pytest.mark.slow
@pytest.mark.parametrize("case", ["a flipped data byte", "a row filter of 9", "a cut stream"])
def test_why_the_check_inflates_torchvision_crashes_on_these(case, tmp_path):
    """The evidence for shardsets/png.py: CRCs alone would let these through, and libpng kills the process."""
    (tmp_path / "bad.png").write_bytes(_crafted()[case])
    code = textwrap.dedent(f"""
        import torch, warnings
        from torchvision.io import decode_image
        warnings.simplefilter("ignore")
        data = open({str(tmp_path / 'bad.png')!r}, "rb").read()
        try:
            decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        except Exception:
            raise SystemExit(3)  # torchvision raised: the crash is fixed upstream; shardsets/png.py says why
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    import torchvision
    from packaging.version import Version

    if Version(torchvision.__version__.split("+")[0]) >= Version("0.29"):  # seen on 0.29.1 (CI's newest pins)
        assert proc.returncode < 0, (proc.returncode, proc.stderr[-300:])  # killed by a signal, not an exception
    else:  # 0.26 (the oldest pins) raises a Python error for the same bytes: the crash came with a later release
        assert proc.returncode == 3, (proc.returncode, proc.stderr[-300:])


def test_a_damaged_png_in_a_shard_costs_only_its_sample(tmp_path):
    pngs = [_small_png() for _ in range(4)]
    pngs[2] = _crafted()["a flipped data byte"]
    with wds.TarWriter(str(tmp_path / "s-000000.tar")) as tar:
        for i, png in enumerate(pngs):
            tar.write({"__key__": f"{i:06d}", "png": png, "json": encode_json({"index": i})})
    with pytest.warns(ShardWarning, match=r"1 samples lost.*000002: its PNG image data is damaged"):
        samples = list(load_shards(str(tmp_path / "s-000000.tar")))
    assert [s["__key__"] for s in samples] == ["000000", "000001", "000003"]


def _three_passes(images: torch.Tensor, value_range: str) -> torch.Tensor:
    """latentds 0.1's conversion, for comparison."""
    x = images.to(torch.float32)
    return x.mul_(2 / 255).sub_(1) if value_range == "-1,1" else x.mul_(1 / 255)


@pytest.mark.parametrize("value_range", ["-1,1", "0,1"])
def test_the_float_conversion_is_the_old_one_bit_for_bit(value_range):
    every = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    assert torch.equal(to_float(every, value_range), _three_passes(every, value_range))
    hwc = torch.randint(0, 256, (37, 20, 24, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images = hwc.permute(0, 3, 1, 2)  # what collate hands over
    ours = to_float(images, value_range)
    assert ours.is_contiguous() and ours.shape == (37, 3, 20, 24)
    assert torch.equal(ours, _three_passes(images.contiguous(), value_range))
    assert torch.equal(to_float(images[5], value_range), _three_passes(images[5], value_range))


def test_a_stream_yields_contiguous_floats_equal_to_the_old_conversion(phi_set):
    _, out = phi_set
    raw = next(iter(load_shards(out, batch_size=8, value_range="0,1")))["image"]
    uint8 = (raw * 255).round().to(torch.uint8)
    for value_range in ("-1,1", "0,1"):
        batch = next(iter(load_shards(out, batch_size=8, value_range=value_range)))["image"]
        assert batch.is_contiguous() and torch.equal(batch, _three_passes(uint8, value_range))


def test_batches_cross_from_workers_as_uint8_and_arrive_as_the_same_floats(phi_set):
    import pickle

    from latentds.datasets.shards import TensorOnArrival

    _, out = phi_set
    images = torch.randint(0, 256, (4, 5, 6, 3), dtype=torch.uint8).permute(0, 3, 1, 2)
    arrived = pickle.loads(pickle.dumps(TensorOnArrival(images, "-1,1")))
    assert arrived.dtype == torch.float32 and torch.equal(arrived, _three_passes(images.contiguous(), "-1,1"))
    ds = load_shards(out, batch_size=4, value_range="0,1")
    direct = {k: img for b in ds for k, img in zip(b["__key__"], b["image"])}
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    batches = list(loader)
    assert batches and all(b["image"].dtype == torch.float32 and b["image"].is_contiguous() for b in batches)
    assert all(torch.equal(img, direct[k]) for b in batches for k, img in zip(b["__key__"], b["image"]))
