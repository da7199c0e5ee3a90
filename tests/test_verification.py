"""Verification from latents (the face study's task): same identity or not, scored on pairs of latents."""

import numpy as np
import pytest

from latentds.analysis.verification import auc, verification, verification_pairs


def test_pairs_are_balanced_and_honest_about_identity():
    identities = np.array(["a", "a", "b", "b", "b", "c"])
    pairs, same = verification_pairs(identities, seed=0)
    assert same.sum() == (~same).sum() == 4  # a: 1 pair, b: 3 pairs
    assert all((identities[i] == identities[j]) == s for (i, j), s in zip(pairs, same))


def test_auc_is_the_chance_a_positive_outscores_a_negative():
    assert auc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([True, True, False, False])) == 1.0
    assert auc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([True, True, False, False])) == 0.0
    assert auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5


@pytest.mark.slow
def test_latents_that_hold_identity_verify_and_random_ones_do_not():
    rng = np.random.default_rng(0)
    identities = rng.integers(0, 50, 1000)
    centres = rng.normal(size=(50, 16))
    holding = verification(centres[identities] + 0.5 * rng.normal(size=(1000, 16)), identities)
    assert holding["auc"] > 0.95 and holding["accuracy"] > 0.9 and holding["auc_se"] < 0.01
    random = verification(rng.normal(size=(1000, 16)), identities)
    assert abs(random["auc"] - 0.5) < 3 * random["auc_se"] + 0.02 and random["accuracy"] < 0.6


def test_the_probe_verifies_a_celeba_pack(tmp_path):
    from latentds.analysis import run
    from latentds.datasets.pack import pack_dataset
    from latentds.zoo.base import create
    from public_fixtures import build_celeba

    build_celeba(tmp_path / "root")
    pack_dataset("celeba", tmp_path / "root", tmp_path / "pack", split="all", size=16, progress=False)
    model = create("vae", image_size=16, latent_dim=4, width=8)
    metrics = run(model, tmp_path / "pack", tmp_path / "out", probes=["verification"], n=6, progress=False)
    result = metrics["verification"]
    assert result["identities"] == 4 and result["pairs"] >= 2 and 0 <= result["auc"] <= 1


@pytest.mark.slow
def test_beta_sweep_runs_the_documents_verification_task_on_given_faces(tmp_path):
    """The faces runs of beta-sweep alone (--runs), on a set with identity labels given as --data faces=DIR (a
    16 px render with 4 identities stands in for a CelebA pack here: the probe reads the same `identity` label,
    see the CelebA test above); the verification table and finding are filled, nothing else is rendered."""
    from latentds.render import RenderSpec, render_shards
    from latentds.studies import run_study

    faces = tmp_path / "faces"
    render_shards(RenderSpec("varied", n=64, size=16, shard_size=32, identities=4, seed=3), faces, workers=1,
                  progress=False)
    out = tmp_path / "study"
    results = run_study("beta-sweep", out, scale="smoke", seeds=1, data={"faces": str(faces)}, runs="*-faces*",
                        progress=False)
    table = next(t for t in results["tables"] if t["metric"] == "verification.auc")
    measured = {r["run"]: r["ours"] for r in table["rows"] if r["ours"]}
    assert set(measured) == {"vae-faces", "beta_vae-faces-2.0", "beta_vae-faces-4.0", "beta_vae-faces-5.0",
                             "beta_vae-faces-10.0"}
    assert results["skipped"]["vae"].startswith("not selected") and not (out / "data" / "varied").exists()
    finding = next(f for f in results["findings"] if "verification" in f["left"])
    assert len(finding["measured"]) == 4 and not finding["verdict"].startswith(("confirmed", "contradicted"))
    assert "analysed on their training images" in results["evaluation"]  # no --data faces-eval given
