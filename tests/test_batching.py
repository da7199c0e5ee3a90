"""Pair and sequence-group batches, and the validation split: layouts, exact split over workers and ranks."""

import random

import pytest
import torch

from conftest import tree_bytes
from latentds.datasets.batching import exactly, pair_samples
from latentds.datasets.cuboids import FACTOR_NAMES
from latentds.datasets.shards import ShardWarning, load_shards
from latentds.errors import InvalidParameterError, ShardError
from latentds.render import RenderSpec, render_shards

IDENTITIES = "identities" in RenderSpec.__dataclass_fields__
try:
    from latentds.render.factors import sequence_factors  # noqa: F401  (multi-factor sequences)
    SEQUENCES = ["phi_0", "phi_0,theta_0"]
except ImportError:
    SEQUENCES = ["phi_0"]

# (extra RenderSpec fields, pair_label): n_cuboids (2, 3 or 4) pairs any varied render; identities if rendered.
PAIRINGS = [({}, "n_cuboids")] + ([({"identities": 8}, "identity")] if IDENTITIES else [])


def _keys(batches):
    return [k for b in batches for k in b["__key__"]]


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """Renders made on first use: ("varied", extra fields as a sorted tuple) or ("sequence", factors)."""
    made = {}

    def get(kind, extra=()):
        if (kind, extra) not in made:
            out = tmp_path_factory.mktemp(kind)
            if kind == "varied":
                spec = RenderSpec("varied", n=96, size=16, shard_size=20, seed=1, **dict(extra))
            else:
                spec = RenderSpec("varied", n=96, size=16, shard_size=20, sequence=extra, steps=4)
            render_shards(spec, out, workers=1, progress=False)
            made[kind, extra] = out
        return made[kind, extra]

    return get


def _per_rank(monkeypatch, make, world=2, workers=2, epoch=0):
    """The batches each of ``world`` simulated ranks gets from a real DataLoader with ``workers`` workers."""
    out = []
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        ds = make()
        ds.set_epoch(epoch)
        batches = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers))
        assert len(batches) == ds.epoch_batches(workers, world)
        out.append(batches)
    return out


def _check_pairs(batch, label, size):
    assert batch["image"].shape == (size, 3, 16, 16) and batch["image"].dtype == torch.float32
    assert batch["group"].dtype == torch.long and batch["group"].tolist() == [i // 2 for i in range(size)]
    keys, labels = batch["__key__"], list(batch["labels"])
    for i in range(0, size, 2):
        assert keys[i] != keys[i + 1] and labels[i][label] == labels[i + 1][label]


@pytest.mark.parametrize("extra,label", PAIRINGS)
def test_pairs_share_the_label_and_come_laid_out_in_pairs(renders, extra, label):
    out = renders("varied", tuple(sorted(extra.items())))
    ds = load_shards(out, batch_size=8, batches="pairs", pair_label=label, shuffle=16, seed=2)
    batches = list(ds)
    assert len(batches) == len(ds) == 96 // 8
    for b in batches:
        _check_pairs(b, label, 8)
        assert b["factors"].shape == (8, len(FACTOR_NAMES))
    again = load_shards(out, batch_size=8, batches="pairs", pair_label=label, shuffle=16, seed=2)
    assert _keys(again) == _keys(batches)  # seeded
    again.set_epoch(1)
    assert _keys(again) != _keys(batches)


@pytest.mark.parametrize("extra,label", PAIRINGS)
def test_pairs_give_every_rank_exactly_its_batches(renders, monkeypatch, extra, label):
    out = renders("varied", tuple(sorted(extra.items())))
    ranks = _per_rank(monkeypatch, lambda: load_shards(out, batch_size=4, batches="pairs", pair_label=label,
                                                       shuffle=6, seed=3))
    assert [len(r) for r in ranks] == [96 // 4 // 4 * 2] * 2  # 24 samples per slot: 6 batches of 4 per worker
    for batches in ranks:
        for b in batches:
            _check_pairs(b, label, 4)
    # Shares are disjoint and pairs are only ever re-drawn within a slot: no sample reaches two ranks.
    assert not set(_keys(ranks[0])) & set(_keys(ranks[1]))


def test_a_slot_short_of_pairs_redraws_ones_it_formed():
    samples = [{"__key__": f"{i}", "labels": {"id": v}} for i, v in enumerate([0, 1, 0, 2, 1, 3, 4])]
    pairs = list(pair_samples(iter(samples), "id"))
    assert [[s["__key__"] for s in p] for p in pairs] == [["0", "2"], ["1", "4"]]
    filled = [[s["__key__"] for s in p] for p in exactly(iter(pairs), 5, random.Random(0))]
    assert len(filled) == 5 and filled[:2] == [["0", "2"], ["1", "4"]]
    assert all(p in filled[:2] for p in filled[2:])
    assert filled == [[s["__key__"] for s in p] for p in exactly(iter(pairs), 5, random.Random(0))]
    assert len(list(exactly(iter(pairs), 1, random.Random(0)))) == 1
    # Only a bounded number of samples waits for a partner: the oldest goes first (here sample 0, before 2 came).
    with pytest.raises(ShardError, match="no two samples"):
        list(pair_samples(iter(samples[:3]), "id", pending=1))


def test_pairs_without_partners_or_without_the_label_are_refused(renders):
    out = renders("varied")
    with pytest.raises(ShardError, match=r"no two samples .* same 'light' label value.*--identities"):
        list(load_shards(out, batch_size=4, batches="pairs", pair_label="light"))
    missing = "identity_card"
    with pytest.raises(ShardError, match=rf"no label '{missing}'.*n_cuboids"):
        next(iter(load_shards(out, batch_size=4, batches="pairs", pair_label=missing)))
    with pytest.raises(InvalidParameterError, match="even batch_size"):
        load_shards(out, batch_size=5, batches="pairs", pair_label="n_cuboids")
    with pytest.raises(InvalidParameterError, match="needs a batch_size"):
        load_shards(out, batches="pairs", pair_label="n_cuboids")
    with pytest.raises(InvalidParameterError, match="'plain', 'pairs', 'groups'"):
        load_shards(out, batch_size=4, batches="triplets")


def _check_groups(batch, steps, size):
    assert batch["image"].shape[:2] == (size, 3)
    assert batch["group"].tolist() == [i // steps for i in range(size)]
    labels = list(batch["labels"])
    for g in range(size // steps):
        rows = slice(g * steps, (g + 1) * steps)
        seq = [lab["sequence"] for lab in labels[rows]]
        assert [s["step"] for s in seq] == list(range(steps)) and len({s["group"] for s in seq}) == 1
        first = seq[0]["group"] * steps
        assert [lab["index"] for lab in labels[rows]] == list(range(first, first + steps))
        factors, mask = batch["factors"][rows], batch["factor_mask"][rows]
        assert (mask == mask[0]).all()
        moving = [name for i, name in enumerate(FACTOR_NAMES) if mask[0, i] and (factors[:, i] != factors[0, i]).any()]
        assert moving == [seq[0]["factor"]]
    return [labels[g * steps]["sequence"]["group"] for g in range(size // steps)]


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_groups_are_whole_one_factor_sweeps_in_step_order(renders, sequence):
    out = renders("sequence", sequence)
    ds = load_shards(out, batch_size=8, batches="groups", shuffle=12, seed=1)
    batches = list(ds)
    assert len(batches) == len(ds) == 96 // 8
    groups = [g for b in batches for g in _check_groups(b, 4, 8)]
    assert sorted(groups) == list(range(24)) and groups != sorted(groups)
    factors = {lab["sequence"]["factor"] for b in batches for lab in b["labels"]}
    assert factors == set(sequence.split(","))
    plain = load_shards(out, batch_size=12, batches="groups")
    assert [g for b in plain for g in _check_groups(b, 4, 12)] == list(range(24))  # no shuffle: in order


@pytest.mark.slow
def test_groups_split_exactly_over_workers_and_ranks_and_move_with_the_epoch(renders, monkeypatch):
    out = renders("sequence", "phi_0")
    seen = {}
    for epoch in (0, 1):
        ranks = _per_rank(monkeypatch, lambda: load_shards(out, batch_size=8, batches="groups", shuffle=8, seed=5),
                          epoch=epoch)
        assert [len(r) for r in ranks] == [6, 6]  # 24 groups, 6 per slot, 2 per batch: 3 batches per worker
        groups = [[g for b in r for g in _check_groups(b, 4, 8)] for r in ranks]
        flat = groups[0] + groups[1]
        assert len(flat) == len(set(flat)) == 24  # every group once per epoch, never split
        seen[epoch] = groups
    assert set(seen[0][0]) != set(seen[1][0])  # the rotation gives slots other groups in another epoch
    uneven = _per_rank(monkeypatch, lambda: load_shards(out, batch_size=4, batches="groups", shuffle=8), world=3,
                       workers=2)
    assert [len(r) for r in uneven] == [8, 8, 8]  # 24 groups over 6 slots: 4 each, one per batch


def test_groups_refuse_a_batch_size_off_whole_groups_and_non_sequence_sets(renders):
    with pytest.raises(InvalidParameterError, match=r"multiple of the set's 4 steps.*not 6; use e\.g\. 4 or 8"):
        load_shards(renders("sequence", "phi_0"), batch_size=6, batches="groups")
    with pytest.raises(ShardError, match="--sequence"):
        load_shards(renders("varied"), batch_size=8, batches="groups")


def test_groups_from_some_shards_of_a_set_must_start_on_a_group(tmp_path):
    render_shards(RenderSpec("varied", n=24, size=8, shard_size=10, sequence="phi_0", steps=4), tmp_path, workers=1,
                  progress=False)
    head = load_shards(str(tmp_path / "varied-{000000..000001}.tar"), batch_size=4, batches="groups")
    assert [g for b in head for g in _check_groups(b, 4, 4)] == [0, 1, 2, 3, 4]
    with pytest.raises(ShardError, match=r"varied-000001\.tar starts in the middle of a sequence group of 4"):
        load_shards(str(tmp_path / "varied-000001.tar"), batch_size=4, batches="groups")


def test_holdout_streams_the_tail_as_validation_and_the_rest_as_training(renders, monkeypatch):
    out = renders("varied")
    train = load_shards(out, holdout=0.25, shuffle=10)
    val = load_shards(out, holdout=0.25, split="validation")
    assert train.split_range == (0, 72) and val.split_range == (72, 96)
    assert len(train) == 72 and len(val) == 24 and val.epoch_samples() == 24
    train_keys, val_keys = [s["__key__"] for s in train], [s["__key__"] for s in val]
    assert sorted(train_keys) == [f"{i:09d}" for i in range(72)]
    assert val_keys == [f"{i:09d}" for i in range(72, 96)]  # the tail, in order
    assert load_shards(out).split_range == (0, 96)
    # Over workers and ranks the split still holds: every rank the same count, from its side only.
    ranks = _per_rank(monkeypatch, lambda: load_shards(out, batch_size=4, holdout=0.3, shuffle=8))
    assert [len(r) for r in ranks] == [(96 - 29) // 4 // 4 * 2] * 2
    keys = _keys(ranks[0]) + _keys(ranks[1])
    assert len(keys) == len(set(keys)) and max(keys) < f"{67:09d}"
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    pairs = load_shards(out, batch_size=4, batches="pairs", pair_label="n_cuboids", holdout=0.5, split="validation")
    assert len(list(pairs)) == len(pairs) == 12 and min(_keys(pairs)) >= f"{48:09d}"


def test_holdout_in_groups_mode_holds_out_whole_groups(renders):
    out = renders("sequence", "phi_0")
    train = load_shards(out, batch_size=4, batches="groups", holdout=0.2)
    val = load_shards(out, batch_size=4, batches="groups", holdout=0.2, split="validation")
    assert train.split_range == (0, 76) and val.split_range == (76, 96)  # 24 groups: 5 held out
    train_groups = [g for b in train for g in _check_groups(b, 4, 4)]
    val_groups = [g for b in val for g in _check_groups(b, 4, 4)]
    assert train_groups == list(range(19)) and val_groups == list(range(19, 24))


def test_holdout_needs_counts_and_a_fraction(renders):
    out = renders("varied")
    urls = [f"pipe:cat {out / 'varied-000000.tar'}", f"pipe:cat {out / 'varied-000001.tar'}"]
    assert len([s for s in load_shards(urls)]) == 40
    with pytest.raises(ShardError, match="holdout needs the sample count"):
        load_shards(urls, holdout=0.1)
    for bad in (1.0, -0.1, "0.1"):
        with pytest.raises(InvalidParameterError, match="holdout must be a fraction"):
            load_shards(out, holdout=bad)
    with pytest.raises(InvalidParameterError, match="needs holdout > 0"):
        load_shards(out, split="validation")
    with pytest.raises(InvalidParameterError, match="split must be one of"):
        load_shards(out, holdout=0.1, split="test")


def _damaged(src, dst):
    dst.mkdir()
    for name, data in tree_bytes(src).items():
        (dst / name).write_bytes(data)
    shard = dst / "varied-000001.tar"
    shard.write_bytes(shard.read_bytes()[:6000])
    return dst


def test_damaged_shards_warn_or_raise_in_pair_and_group_modes(renders, tmp_path):
    pairs = _damaged(renders("varied"), tmp_path / "p")
    with pytest.warns(ShardWarning, match=r"varied-000001\.tar: \d+ of 20 samples lost"):
        batches = list(load_shards(pairs, batch_size=8, batches="pairs", pair_label="n_cuboids"))
    assert len(batches) == 12  # lost pairs are made up for: the count stays exact
    for b in batches:
        _check_pairs(b, "n_cuboids", 8)
    with pytest.raises(ShardError, match=r"varied-000001\.tar"):
        list(load_shards(pairs, batch_size=8, batches="pairs", pair_label="n_cuboids", strict=True))
    groups = _damaged(renders("sequence", "phi_0"), tmp_path / "g")
    with pytest.warns(ShardWarning, match=r"varied-000001\.tar"):
        batches = list(load_shards(groups, batch_size=4, batches="groups"))
    found = [g for b in batches for g in _check_groups(b, 4, 4)]  # incomplete groups dropped, the rest whole
    assert 19 <= len(found) < 24 and 0 in found and 23 in found
    with pytest.raises(ShardError, match=r"varied-000001\.tar"):
        list(load_shards(groups, batch_size=4, batches="groups", strict=True))


def test_plain_batches_carry_no_group(renders):
    out = renders("varied")
    batch = next(iter(load_shards(out, batch_size=8)))
    assert "group" not in batch and batch["image"].shape == (8, 3, 16, 16)
