"""load_shards(dtype="uint8"): the images the float path converts, unconverted (x / 127.5 - 1 gives the float path's
values); and how batches cross from DataLoader workers (by value, labels as one JSON document) changes nothing a
consumer sees."""

import pickle

import orjson
import pytest
import torch

from latentds.datasets.handover import LabelBatch, TensorOnArrival, handed_over
from latentds.datasets.shards import load_shards
from latentds.errors import InvalidParameterError


def _by_key(batches, member="image"):
    return {k: v for b in batches for k, v in zip(b["__key__"], b[member])}


@pytest.mark.parametrize("dtype", ["uint8", torch.uint8])
def test_uint8_batches_are_the_float_batches_before_conversion(phi_set, dtype):
    _, out = phi_set
    floats = list(load_shards(out, batch_size=8, shuffle=16, seed=3))
    uint8 = list(load_shards(out, batch_size=8, shuffle=16, seed=3, dtype=dtype))
    assert [b["__key__"] for b in uint8] == [b["__key__"] for b in floats]
    for u, f in zip(uint8, floats):
        image = u["image"]
        assert image.dtype == torch.uint8 and image.shape == f["image"].shape == (8, 3, 16, 16)
        assert image.is_contiguous()
        assert torch.allclose(image.float() / 127.5 - 1, f["image"], atol=1e-6)
        assert torch.equal(image.float().mul(2 / 255).sub(1), f["image"])  # the documented conversion, bit for bit
        assert torch.equal(u["factors"], f["factors"]) and list(u["labels"]) == list(f["labels"])


def test_uint8_single_samples_and_zero_one_range(phi_set):
    _, out = phi_set
    sample = next(iter(load_shards(out, dtype="uint8")))
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, 16, 16)
    assert isinstance(sample["labels"], dict)
    zero_one = next(iter(load_shards(out, value_range="0,1")))["image"]
    assert torch.equal(sample["image"].float().mul(1 / 255), zero_one)


def test_uint8_batches_from_workers_equal_those_without(phi_set):
    _, out = phi_set
    ds = load_shards(out, batch_size=4, dtype="uint8")
    direct = list(ds)
    loader = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2))
    assert loader and all(b["image"].dtype == torch.uint8 and b["image"].is_contiguous() for b in loader)
    assert all(isinstance(b["factors"], torch.Tensor) and b["factor_mask"].dtype == torch.bool for b in loader)
    want, got = _by_key(direct), _by_key(loader)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    labels = _by_key(loader, "labels")
    assert all(labels[k]["key"] == k for k in labels)
    assert _by_key(direct, "labels") == labels


def test_a_bad_dtype_is_refused(phi_set):
    _, out = phi_set
    with pytest.raises(InvalidParameterError, match="dtype"):
        load_shards(out, batch_size=4, dtype="float16")


def test_a_batch_travels_by_value_and_labels_as_their_documents():
    images = torch.randint(0, 256, (2, 5, 6, 3), dtype=torch.uint8).permute(0, 3, 1, 2)
    documents = [b'{"a": 1, "b": [1.5, {"c": null}]}', b' {"a": 2} ']
    batch = {"image": images, "factors": torch.rand(2, 3), "labels": LabelBatch.of_documents(documents),
             "__key__": ["x", "y"]}
    wrapped = handed_over(batch, None)
    assert isinstance(wrapped["factors"], TensorOnArrival)
    arrived = pickle.loads(pickle.dumps(wrapped))
    assert arrived["image"].is_contiguous() and torch.equal(arrived["image"], images)
    assert torch.equal(arrived["factors"], batch["factors"])
    assert list(arrived["labels"]) == [orjson.loads(d) for d in documents] and arrived["__key__"] == ["x", "y"]
    floats = pickle.loads(pickle.dumps(handed_over(batch, "-1,1")))["image"]
    assert floats.dtype == torch.float32 and torch.equal(floats, images.float().mul(2 / 255).sub(1))
