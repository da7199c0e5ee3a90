"""Packs of labelled public datasets carry their numeric labels as a factor table: streamed as factor vectors,
shown in the card and by `latentds info`, named in analysis."""

import json

import numpy as np
import pytest

import public_fixtures as fx
from latentds.datasets.pack import pack_dataset
from latentds.datasets.shards import load_shards
from latentds.shardsets.manifest import describe, read_manifest

EXPECTED = {
    "utkface": ["age", "gender", "race"],
    "celeba": list(fx.CELEBA_ATTRIBUTES),
    "food101": ["label"],
    "sprites": ["body", "sex", "hair", "armor", "arm", "greaves", "weapon", "frame"],
}


def _pack(name, tmp_path, split=None):
    source = getattr(fx, f"build_{name}")(tmp_path / "source")
    out = tmp_path / "packed"
    pack_dataset(name, source["root"], out, split=split, size=16, workers=1, progress=False)
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_pack_streams_its_numeric_labels_as_factors(name, tmp_path):
    out = _pack(name, tmp_path, split="train" if name == "sprites" else None)
    manifest = read_manifest(out)
    table = manifest["factors"]
    assert [row["name"] for row in table] == EXPECTED[name]
    assert all(row["varies"] and row["type"] == "int" and row["range"][0] <= row["range"][1] for row in table)
    stream = load_shards(out, value_range="0,1")
    assert [row["name"] for row in stream.factor_table] == EXPECTED[name]
    n = 0
    for sample in stream:
        labels = sample["labels"]
        assert bool(np.asarray(sample["factor_mask"]).all())
        assert np.asarray(sample["factors"]).tolist() == [float(labels[f]) for f in EXPECTED[name]]
        for row in table:  # the range covers the data
            assert row["range"][0] <= labels[row["name"]] <= row["range"][1]
        n += 1
    assert n == manifest["count"] > 0
    card = (out / "README.md").read_text()
    assert "## Factors" in card and all(f"| `{f}` |" in card for f in EXPECTED[name])
    assert all(f in describe(manifest) for f in EXPECTED[name])


def test_a_pack_without_numeric_factors_writes_no_table(tmp_path):
    out = _pack("coco", tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "factors" not in manifest
    assert "## Factors" not in (out / "README.md").read_text()
    assert load_shards(out).factor_table == []


def test_analysis_names_the_factors_of_a_pack(tmp_path):
    from latentds.analysis.encode import encode_dataset
    from latentds.zoo.models.vae import VAE, VAEConfig

    out = _pack("utkface", tmp_path)
    codes = encode_dataset(VAE(VAEConfig(image_size=16, latent_dim=4)), out, progress=False)
    labels = fx.build_utkface(tmp_path / "again")["labels"]
    assert list(codes.factor_names) == ["age", "gender", "race"]
    assert sorted(map(tuple, codes.factors.tolist())) == sorted(
        (float(v["age"]), float(v["gender"]), float(v["race"])) for v in labels.values())
