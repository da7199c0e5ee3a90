"""Streaming shard sets: contents, splitting across workers and ranks, shuffling, damaged shards, sources."""

import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tree_bytes
import latentds
from latentds.datasets.cuboids import FACTOR_NAMES
from latentds.datasets.sequences import sequence_groups
from latentds.datasets.shards import ShardWarning, load_shards
from latentds.datasets.tarstream import tar_samples
from latentds.errors import ShardError
from latentds.render import RenderSpec, render_shards


def _keys(items):
    return [k for item in items for k in (item["__key__"] if isinstance(item["__key__"], list) else [item["__key__"]])]


def _png(phi_dir, index):
    shard = phi_dir / f"phi-{index // 10:06d}.tar"
    with tarfile.open(shard) as tar:
        return np.array(Image.open(io.BytesIO(tar.extractfile(f"{index:09d}.png").read())))


def test_samples_in_order_with_images_labels_and_factors(phi_set):
    spec, out = phi_set
    samples = list(latentds.load_shards(out))
    assert _keys(samples) == [f"{i:09d}" for i in range(40)]
    s = samples[13]
    assert s["image"].dtype == torch.float32 and s["image"].shape == (3, 16, 16)
    expected = torch.from_numpy(_png(out, 13)).permute(2, 0, 1).float() / 255 * 2 - 1
    assert torch.allclose(s["image"], expected, atol=1e-6)
    assert s["labels"]["index"] == 13
    factors, present = dict(zip(FACTOR_NAMES, s["factors"].tolist())), dict(zip(FACTOR_NAMES, s["factor_mask"]))
    assert factors["phi_0"] == pytest.approx(s["labels"]["joints"][0]["phi"]) and present["phi_0"]
    assert factors["n_cuboids"] == 2 and not present["phi_1"] and not present["color_3_r"] and factors["phi_1"] == 0


def test_value_range_zero_one(phi_set):
    _, out = phi_set
    s = next(iter(load_shards(out, value_range="0,1")))
    assert s["image"].min() >= 0 and torch.allclose(s["image"] * 255, torch.from_numpy(_png(out, 0)).permute(2, 0, 1)
                                                    .float(), atol=1e-4)


@pytest.mark.parametrize("workers", [2, 3])
def test_dataloader_workers_share_an_epoch_without_repeats(phi_set, workers):
    _, out = phi_set
    ds = load_shards(out, batch_size=4)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
    batches = list(loader)
    keys = _keys(batches)
    assert len(keys) == len(set(keys)) == (40 // workers // 4) * 4 * workers  # full batches only
    assert len(batches) == ds.epoch_batches(num_workers=workers)
    partial = load_shards(out, batch_size=4, partial=True)
    keys = _keys(torch.utils.data.DataLoader(partial, batch_size=None, num_workers=workers))
    assert len(keys) == len(set(keys)) == (40 // workers) * workers
    assert all(b["image"].shape == (4, 3, 16, 16) and b["factors"].shape == (4, len(FACTOR_NAMES)) for b in batches)


def test_ranks_get_disjoint_equal_parts_even_with_one_shard(tmp_path, monkeypatch):
    render_shards(RenderSpec("phi", n=22, size=8, shard_size=100), tmp_path, workers=1, progress=False)
    per_rank = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        ds = load_shards(tmp_path, batch_size=2)
        batches = list(ds)
        assert len(batches) == len(ds) == 3  # 7 samples per rank, full batches only: no rank waits for another
        per_rank.append(set(_keys(batches)))
    assert all(len(k) == 6 for k in per_rank)
    assert not (per_rank[0] & per_rank[1]) and not (per_rank[1] & per_rank[2]) and not (per_rank[0] & per_rank[2])


def test_shuffle_depends_on_seed_and_epoch_and_keeps_every_sample(phi_set):
    _, out = phi_set
    ds = load_shards(out, shuffle=16, seed=1)
    first = _keys(ds)
    assert sorted(first) == [f"{i:09d}" for i in range(40)] and first != sorted(first)
    assert _keys(load_shards(out, shuffle=16, seed=1)) == first
    ds.set_epoch(1)
    assert _keys(ds) != first


def _copy(src, dst):
    dst.mkdir()
    for name, data in tree_bytes(src).items():
        (dst / name).write_bytes(data)
    return dst


def test_a_truncated_shard_is_reported_and_skipped_or_raised(phi_set, tmp_path):
    _, out = phi_set
    damaged = _copy(out, tmp_path / "d")
    shard = damaged / "phi-000001.tar"
    shard.write_bytes(shard.read_bytes()[:5000])
    with pytest.warns(ShardWarning, match=r"phi-000001\.tar: \d+ of 10 samples lost"):
        keys = _keys(load_shards(damaged))
    assert 30 <= len(keys) < 40 and "000000000" in keys and "000000039" in keys
    with pytest.raises(ShardError, match=r"phi-000001\.tar"):
        list(load_shards(damaged, strict=True))


def test_a_garbage_shard_is_reported(phi_set, tmp_path):
    _, out = phi_set
    damaged = _copy(out, tmp_path / "g")
    (damaged / "phi-000002.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.warns(ShardWarning, match=r"phi-000002\.tar: 10 of 10 samples lost"):
        assert len(_keys(load_shards(damaged))) == 30


def test_brace_patterns_lists_and_pipe_urls(phi_set):
    _, out = phi_set
    pattern = str(out / "phi-{000001..000002}.tar")
    assert _keys(load_shards(pattern)) == [f"{i:09d}" for i in range(10, 30)]
    assert len(load_shards(pattern)) == 20  # counts from the manifest beside the shards
    urls = [f"pipe:cat {out / 'phi-000003.tar'}", f"pipe:cat {out / 'phi-000000.tar'}"]
    assert _keys(load_shards(urls)) == [f"{i:09d}" for i in [*range(30, 40), *range(10)]]
    with pytest.raises(ShardError, match="does not exist"):
        load_shards(str(out / "phi-{000007..000008}.tar"))


def test_our_tar_reader_matches_tarfile_on_pax_and_long_names():
    buf = io.BytesIO()
    long_dir = "d" * 120
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [("a.png", b"A"), ("a.json", b"{}"), (f"{long_dir}/b.png", b"B" * 700),
                           (f"{long_dir}/b.cls", "é".encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    samples = list(tar_samples(buf, "mem"))
    assert samples == [{"__key__": "a", "__url__": "mem", "png": b"A", "json": b"{}"},
                       {"__key__": f"{long_dir}/b", "__url__": "mem", "png": b"B" * 700, "cls": "é".encode()}]


def test_sequence_groups_come_back_in_order(tmp_path):
    spec = RenderSpec("varied", n=12, size=8, shard_size=5, sequence="theta_0", steps=4)
    render_shards(spec, tmp_path, workers=1, progress=False)
    groups = list(sequence_groups(tmp_path))
    assert [g["group"] for g in groups] == [0, 1, 2]
    g = groups[1]
    assert g["factor"] == "theta_0" and g["images"].shape == (4, 3, 8, 8)
    assert torch.allclose(g["values"], torch.linspace(-60, 60, 4, dtype=torch.float64))
    assert [lab["index"] for lab in g["labels"]] == [4, 5, 6, 7]
    only = list(sequence_groups(tmp_path, groups=[2]))
    assert len(only) == 1 and torch.equal(only[0]["images"], groups[2]["images"])
    with pytest.raises(ShardError, match="not a --sequence render"):
        next(sequence_groups(_plain(tmp_path)))


def _plain(tmp_path):
    out = tmp_path.parent / (tmp_path.name + "-plain")
    render_shards(RenderSpec("phi", n=3, size=8), out, workers=1, progress=False)
    return out


def test_factor_vector_agrees_with_the_factor_table():
    from latentds.datasets.factors import FactorVector
    from latentds.render.factors import FACTORS, factor_value, sample_labels

    vector = FactorVector([f.as_json(True) for f in FACTORS])
    for i in range(60):
        labels = sample_labels("varied", 5, i, 16)
        values, present = vector(labels)
        expected = []
        for f in FACTORS:
            v = factor_value(labels, f.name)
            width = 3 if f.type == "rgb" else 1
            expected += [None] * width if v is None else (list(v) if width == 3 else [v])
        assert len(expected) == len(values) == len(FACTOR_NAMES)
        for e, v, p in zip(expected, values, present):
            assert (e is None and not p and v == 0) or (p and v == pytest.approx(e, rel=1e-6))


def test_factor_names_and_ranges_come_from_the_manifest(phi_set):
    _, out = phi_set
    table = load_shards(out).factor_table
    assert [row["name"] for row in table] == list(FACTOR_NAMES)
    phi = table[FACTOR_NAMES.index("phi_0")]
    assert phi["range"] == [-135.0, 135.0] and phi["varies"] and not table[FACTOR_NAMES.index("phi_1")]["varies"]


def test_the_public_shuffle_and_batch_stages_keep_the_stream_order():
    """shards.py uses webdataset's public curried stages: the shuffle is a permutation fixed by its rng (the
    stream's order depends on (seed, epoch, slot) only), batches keep the order; where this webdataset still has
    the private stages shards.py used before, the public ones give their exact order."""
    import random

    import webdataset as wds

    items = list(range(333))

    def shuffled(seed):
        return list(wds.filters.shuffle(64, 64, rng=random.Random(seed))(iter(items)))

    assert sorted(shuffled(1)) == items and shuffled(1) == shuffled(1) != items and shuffled(1) != shuffled(2)
    for partial in (True, False):
        batches = list(wds.filters.batched(10, collation_fn=list, partial=partial)(iter(items)))
        assert [x for b in batches for x in b] == items[:len(batches) * 10 if not partial else None]
        assert all(len(b) == 10 for b in batches[:-1]) and (partial or len(batches[-1]) == 10)
    if hasattr(wds.filters, "_shuffle"):  # the stages shards.py used before: the same order
        private = wds.filters._shuffle(iter(items), bufsize=64, initial=64, rng=random.Random(1))
        assert list(private) == shuffled(1)
        for partial in (True, False):
            assert (list(wds.filters.batched(10, collation_fn=sum, partial=partial)(iter(items))) ==
                    list(wds.filters._batched(iter(items), 10, collation_fn=sum, partial=partial)))

def test_a_manifest_that_lists_a_shard_twice_or_comes_from_a_newer_format_is_refused(tmp_path):
    import json

    from latentds.render import RenderSpec, render_shards
    from latentds.errors import ShardError
    from latentds.shardsets.manifest import read_manifest, verify_shards

    render_shards(RenderSpec("phi", n=8, size=16, shard_size=4), tmp_path / "set", workers=1, progress=False)
    file = tmp_path / "set" / "manifest.json"
    original = json.loads(file.read_text())
    twice = dict(original, shards=[original["shards"][0]] * 2)
    file.write_text(json.dumps(twice))
    for read in (lambda: read_manifest(tmp_path / "set"), lambda: read_manifest(tmp_path / "set", strict=False),
                 lambda: verify_shards(tmp_path / "set"), lambda: list(load_shards(tmp_path / "set"))):
        with pytest.raises(ShardError, match="names '.*' again"):
            read()
    file.write_text(json.dumps(dict(original, format_version=99)))
    with pytest.raises(ShardError, match="format version 99, newer than this latentds reads"):
        list(load_shards(tmp_path / "set"))
    with pytest.raises(ShardError, match="does not exist"):
        read_manifest(tmp_path / "nope")
