"""The shard tar writer writes exactly the bytes webdataset.TarWriter writes (it replaces it for speed)."""

import io

import numpy as np
import pytest
import webdataset as wds

from latentds.shardsets.tarwriter import tar_bytes

META = dict(user="latentds", group="latentds", mode=0o444, mtime=1_700_000_000)


def _reference(samples: list[dict]) -> bytes:
    buf = io.BytesIO()
    with wds.TarWriter(buf, encoder=False, **META) as tar:
        for sample in samples:
            tar.write(sample)
    return buf.getvalue()


def _samples(seed: int, n: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        size = int(rng.choice([0, 1, 511, 512, 513, 10_239, 10_240, int(rng.integers(0, 30_000))]))
        out.append({"__key__": f"{i:09d}", "png": rng.bytes(size), "json": rng.bytes(int(rng.integers(1, 900))),
                    "depth.npy": rng.bytes(int(rng.integers(0, 3000)))})
    return out


@pytest.mark.slow
@pytest.mark.parametrize("seed,n", [(0, 0), (1, 1), (2, 7), (3, 120)])
def test_same_bytes_as_webdataset(seed, n):
    samples = _samples(seed, n)
    assert tar_bytes(samples, **META) == _reference(samples)


@pytest.mark.parametrize("key", ["k" * 95, "k" * 120, "dir/sub/ünïcode", "a b", "0" * 100])
def test_names_ustar_cannot_hold_fall_back_to_tarfile(key):
    samples = [{"__key__": key, "png": b"x" * 700, "json": b"{}"}]
    assert tar_bytes(samples, **META) == _reference(samples)


def test_non_bytes_member_is_refused():
    with pytest.raises(ValueError, match="not bytes"):
        tar_bytes([{"__key__": "a", "png": 3}], **META)
