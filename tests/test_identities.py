"""--identities (chains that recur in other poses and lights) and multi-factor --sequence renders."""

import json
import tarfile
from collections import defaultdict

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import tree_bytes
from latentds.cli import main
from latentds.datasets.sequences import sequence_groups
from latentds.render import RenderSpec, render_shards
from latentds.render.factors import FACTORS_BY_NAME, identity_chain, sample_labels
from latentds.shardsets.manifest import read_manifest


def _by_identity(labels):
    groups = defaultdict(list)
    for lab in labels:
        groups[lab["identity"]].append(lab)
    return groups


def test_an_identity_fixes_the_chain_and_pose_and_lights_stay_the_samples_own():
    k = 5
    labels = [sample_labels("varied", 3, i, 64, identities=k) for i in range(200)]
    groups = _by_identity(labels)
    assert set(groups) == set(range(k)) and all(type(lab["identity"]) is int for lab in labels)
    for identity, members in groups.items():
        n, colors = identity_chain(3, identity)
        assert all(m["n_cuboids"] == n and m["colors"] == colors[:n] for m in members)
        assert len({json.dumps(m["joints"]) for m in members}) == len(members)  # poses vary within an identity
    assert len({json.dumps(members[0]["colors"]) for members in groups.values()}) == k
    for i, lab in enumerate(labels[:20]):  # pose and lights are drawn exactly as without identities
        plain = sample_labels("varied", 3, i, 64)
        j = min(len(lab["joints"]), len(plain["joints"]))
        assert lab["joints"][:j] == plain["joints"][:j]
        assert all(lab[key] == plain[key] for key in ("light", "spot_lights", "point_lights", "camera"))
    assert sample_labels("varied", 3, 7, 64, identities=k) == labels[7]
    assert sample_labels("varied", 4, 7, 64, identities=k) != labels[7]


def test_a_sequence_group_shares_one_identity():
    steps = 4
    labels = [sample_labels("varied", 2, i, 64, "light_azimuth,phi_0", steps, identities=3) for i in range(40)]
    for g in range(10):
        group = labels[g * steps:(g + 1) * steps]
        assert len({lab["identity"] for lab in group}) == 1
        assert all(lab["colors"] == group[0]["colors"] for lab in group)
        assert group[0]["sequence"]["factor"] == ("light_azimuth", "phi_0")[g % 2]
    assert {lab["identity"] for lab in labels} == {0, 1, 2}


def test_identity_render_is_reproducible_and_labelled(tmp_path):
    spec = RenderSpec("varied", n=40, size=16, shard_size=20, identities=4)
    render_shards(spec, tmp_path / "a", workers=1, progress=False)
    render_shards(spec, tmp_path / "b", workers=1, progress=False)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    manifest = read_manifest(tmp_path / "a")
    assert manifest["params"]["identities"] == 4 and "--identities 4" in manifest["command"]
    assert "4 identities: each sample's `identity` label" in (tmp_path / "a" / "README.md").read_text()
    with tarfile.open(tmp_path / "a" / "varied-000001.tar") as tar:
        labels = [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.name.endswith(".json")]
    assert [lab["index"] for lab in labels] == list(range(20, 40))
    assert labels == [sample_labels("varied", 0, i, 16, identities=4) for i in range(20, 40)]


def test_identity_seed_renders_new_images_of_another_renders_identities(tmp_path):
    train = [sample_labels("varied", 0, i, 16, identities=4) for i in range(60)]
    twin = [sample_labels("varied", 9, i, 16, identities=4, identity_seed=0) for i in range(60)]
    chains = {lab["identity"]: (lab["n_cuboids"], lab["colors"]) for lab in train}
    assert {lab["identity"] for lab in twin} == set(chains)
    assert all((lab["n_cuboids"], lab["colors"]) == chains[lab["identity"]] for lab in twin)  # the same identities
    assert all(t["joints"] != s["joints"] for t, s in zip(twin, train))  # in new poses
    assert all(lab["identity_seed"] == 0 for lab in twin) and "identity_seed" not in train[0]
    other = [sample_labels("varied", 9, i, 16, identities=4) for i in range(60)]
    assert any(lab["colors"] != chains[lab["identity"]][1] for lab in other)  # without it: seed 9's own identities
    spec = RenderSpec("varied", n=20, size=16, shard_size=20, seed=9, identities=4, identity_seed=0)
    render_shards(spec, tmp_path, workers=1, progress=False)
    manifest = read_manifest(tmp_path)
    assert manifest["params"]["identity_seed"] == 0 and "--identities 4 --identity-seed 0" in manifest["command"]
    assert "seed 0 and the identity" in (tmp_path / "README.md").read_text()
    with tarfile.open(tmp_path / "varied-000000.tar") as tar:
        labels = [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.name.endswith(".json")]
    assert labels == twin[:20]
    assert "identity_seed" not in RenderSpec("varied", n=20, identities=4).param_fields()  # old renders' bytes


def test_multi_factor_sequence_render_groups_name_their_own_factor(tmp_path):
    spec = RenderSpec("varied", n=12, size=8, shard_size=5, sequence="phi_0,light_azimuth", steps=4)
    render_shards(spec, tmp_path, workers=1, progress=False)
    manifest = read_manifest(tmp_path)
    assert manifest["params"]["sequence"] == "phi_0,light_azimuth"
    assert "--sequence phi_0,light_azimuth --steps 4" in manifest["command"]
    groups = list(sequence_groups(tmp_path))
    assert [g["factor"] for g in groups] == ["phi_0", "light_azimuth", "phi_0"]
    for g in groups:
        f = FACTORS_BY_NAME[g["factor"]]
        assert torch.allclose(g["values"], torch.linspace(f.low, f.high, 4, dtype=torch.float64))
        assert all(lab["sequence"]["factor"] == g["factor"] for lab in g["labels"])
    assert [g["factor"] for g in sequence_groups(tmp_path, groups=[1])] == ["light_azimuth"]


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("args, message", [
    (["--phi", "--identities", "4"], "--identities needs --varied"),
    (["--varied", "--identities", "1"], "--identities must be a whole number from 2 to 1,000,000"),
    (["--varied", "--sequence", "phi_0,elbow", "--steps", "4"], "unknown --sequence factor 'elbow'"),
    (["--varied", "--identity-seed", "3"], "--identity-seed needs --identities K"),
    (["--varied", "--sequence", "phi_0,phi_0", "--steps", "4"], "names 'phi_0' twice"),
])
def test_bad_identities_and_sequence_lists_are_one_line_and_exit_2(tmp_path, args, message):
    out = tmp_path / "out"
    result = run("render", "--n", "8", "--out", str(out), "--quiet", *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_help_names_the_new_options():
    text = run("render", "--help").output
    assert "--identities" in text and "cycle-consistent VAE" in text and "FACTOR[,FACTOR...]" in text
    assert "--identity-seed" in text
