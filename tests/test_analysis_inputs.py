"""The shared inputs of an analysis (analysis/context.py): prepared once and handed to every probe -- one image
batch for metrics and FID, the sequence groups at the model's image size, the interpolation paths the UMAP draws
whatever the probe order -- and the factor names of the data actually encoded (issue 11)."""

import dataclasses

import numpy as np
import pytest
import torch
from analysis_sets import render_analysis_sets
from PIL import Image

import latentds.datasets.shards as shards
from latentds import load_shards
from latentds.analysis.context import Context
from latentds.analysis.options import AnalysisOptions
from latentds.analysis.encode import Codes, encode_dataset
from latentds.analysis.labels import values_of, varying_factors
from latentds.analysis.registry import PROBES, probe
from latentds.analysis.runner import run
from latentds.analysis.select import select
from latentds.errors import InvalidParameterError
from latentds.zoo.base import create


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    base = tmp_path_factory.mktemp("inputs")
    # a sequence set of two groups of 8 steps: fewer than the three the interpolation probe shows
    render_analysis_sets(base, seed=4, n=24, seq_n=16, seq_name="seq2")
    torch.manual_seed(0)
    return base, create("vae", image_size=16, width=8, latent_dim=4).eval()


@pytest.mark.slow
def test_interpolation_resizes_a_sequence_set_to_the_models_image_size(sets, tmp_path):
    base, _ = sets
    torch.manual_seed(0)
    big = create("vae", image_size=32, width=8, latent_dim=4).eval()  # 32 px model, 16 px sequence set
    metrics = run(big, base / "varied", tmp_path, probes=["interpolation"], n=16, sequence_data=base / "seq2",
                  progress=False)
    assert metrics["skipped"] == {}
    assert set(metrics["interpolation"]) == {"group0", "group1", "all"}  # both groups of a two-group set
    assert metrics["interpolation"]["all"]["groups"] == 2
    assert all(len(metrics["interpolation"][g]["image_mse"]["natural"]) == 8 for g in ("group0", "group1"))
    # 4 rows (rendered, natural, linear, spherical) of 8 images of 32 px, padding 1
    assert Image.open(tmp_path / "figures" / "interpolation_group0.png").size == (8 * 33 + 1, 4 * 33 + 1)
    # resized exactly as load_shards resizes the data for this model
    ctx = Context(big, str(base / "varied"), tmp_path / "ctx",
                  AnalysisOptions(n=16, sequence_data=str(base / "seq2")))
    expected = next(iter(load_shards(base / "seq2", batch_size=8, size=32)))["image"]
    assert torch.equal(ctx.sequences()[0]["images"], expected)


@pytest.mark.slow
def test_a_two_group_sequence_set_is_a_sequence_set(sets, tmp_path):
    base, model = sets
    metrics = run(model, base / "varied", tmp_path, probes=["interpolation"], n=16, sequence_data=base / "seq2",
                  progress=False)
    assert metrics["skipped"] == {} and set(metrics["interpolation"]) == {"group0", "group1", "all"}
    assert metrics["interpolation"]["group1"]["factor"] == "theta_1"
    not_a_sequence = run(model, base / "varied", tmp_path / "b", probes=["interpolation"], n=16, progress=False)
    assert "--sequence" in not_a_sequence["skipped"]["interpolation"]  # the true reason when it is not one
    with pytest.raises(InvalidParameterError, match="--sequence-data: .*nowhere does not exist"):  # a user's slip
        run(model, base / "varied", tmp_path / "c", probes=["interpolation"], n=16,
            sequence_data=tmp_path / "nowhere", progress=False)


@pytest.mark.slow
def test_metrics_and_fid_share_one_image_batch_and_its_reconstructions(sets, tmp_path, monkeypatch):
    base, model = sets
    run(model, base / "varied", tmp_path, probes=[], n=24, progress=False)  # encode first: not counted below
    opened, reconstructed = [], []
    original_load, original_reconstruct = shards.load_shards, model.reconstruct

    def counting_load(*args, **kwargs):
        opened.append(kwargs.get("batch_size"))
        return original_load(*args, **kwargs)

    def counting_reconstruct(x):
        reconstructed.append(len(x))
        return original_reconstruct(x)

    monkeypatch.setattr(shards, "load_shards", counting_load)
    monkeypatch.setattr(model, "reconstruct", counting_reconstruct)
    metrics = run(model, base / "varied", tmp_path, probes=["metrics", "fid"], n=24, progress=False)
    assert opened == [24] and sum(reconstructed) == 24  # one batch, reconstructed once, for both probes
    assert metrics["fid"]["reconstructions"]["n_real"] == 24 and metrics["fid"]["samples"]["n_real"] == 24

    from latentds.analysis.image_metrics import reconstruction_metrics

    images = next(iter(original_load(base / "varied", batch_size=24)))["image"]
    with torch.no_grad():
        expected = reconstruction_metrics(images, original_reconstruct(images))
    assert metrics["metrics"]["mse"] == pytest.approx(expected["mse"]["mean"], rel=1e-5)
    assert metrics["metrics"]["ssim"] == pytest.approx(expected["ssim"]["mean"], rel=1e-5)


def test_probes_get_the_model_in_eval_mode_and_its_device(sets, tmp_path):
    base, _ = sets
    torch.manual_seed(0)
    training = create("vae", image_size=16, width=8, latent_dim=4).train()
    seen = {}

    @probe("test_sees_mode", explain="Test only: what a probe is handed.")
    def sees(ctx):
        seen.update(training=ctx.model.training, device=ctx.device)
        return {}, []

    try:
        run(training, base / "varied", tmp_path, probes=["test_sees_mode"], n=8, progress=False)
    finally:
        PROBES.pop("test_sees_mode")
    assert seen == {"training": False, "device": torch.device("cpu")}


@pytest.mark.slow
def test_factor_names_come_from_the_encoded_data(sets, tmp_path, monkeypatch):
    base, model = sets
    codes = encode_dataset(model, base / "varied", n=24, progress=False)
    table = load_shards(base / "varied").factor_table
    assert codes.factor_names == [row["name"] for row in table] and "phi_0" in codes.factor_names
    renamed = dataclasses.replace(codes, factor_names=[f"x_{name}" for name in codes.factor_names])
    assert np.array_equal(values_of(renamed, "x_phi_0"), values_of(codes, "phi_0"), equal_nan=True)
    assert (select(renamed, "x_phi_0>0") == select(codes, "phi_0>0")).all()
    assert all(name.startswith("x_") for name in varying_factors(renamed)[1])
    with pytest.raises(Exception, match="no factor or label 'phi_0'"):
        values_of(renamed, "phi_0")  # no fixed list of cuboid factors behind the names

    codes.save(tmp_path / "cache")
    assert Codes.load(tmp_path / "cache").factor_names == codes.factor_names

    # run() names the factors by the stream's table
    monkeypatch.setattr(shards.ShardStream, "factor_table",
                        property(lambda self: [{**row, "name": f"y_{row['name']}"} for row in table]))
    metrics = run(model, base / "varied", tmp_path / "run", probes=["factors"], n=24, progress=False)
    assert "y_phi_0" in metrics["factors"] and "phi_0" not in metrics["factors"]
    assert metrics["data"]["factor_names"][0].startswith("y_")


@pytest.mark.slow
def test_the_umap_draws_the_interpolation_paths_whatever_the_probe_order(sets, tmp_path):
    base, model = sets
    for order in (["umap"], ["umap", "interpolation"], ["interpolation", "umap"]):
        out = tmp_path / "-".join(order)
        metrics = run(model, base / "varied", out, probes=order, n=24, sequence_data=base / "seq2", progress=False)
        assert metrics["umap"]["overlaid_paths"] == ["linear", "natural", "spherical"], order
    plain = run(model, base / "varied", tmp_path / "plain", probes=["umap"], n=24, progress=False)
    assert plain["umap"]["overlaid_paths"] == [] and plain["skipped"] == {}


@pytest.mark.slow
def test_a_model_without_a_decoder_gets_its_umap_paths_by_encoding_alone(sets, tmp_path):
    """The overlay needs only the encoder: an e2e_cnn (no decoder) with a sequence set draws the paths, and the
    interpolation probe, which decodes, is skipped with its reason rather than ending the run."""
    base, _ = sets
    torch.manual_seed(0)
    cnn = create("e2e_cnn", image_size=16, width=8, latent_dim=4).eval()
    metrics = run(cnn, base / "varied", tmp_path, probes=["umap", "interpolation"], n=24,
                  sequence_data=base / "seq2", progress=False)
    assert metrics["umap"]["overlaid_paths"] == ["linear", "natural", "spherical"]
    assert "interpolation" in metrics["skipped"] and "decoder" in metrics["skipped"]["interpolation"]
    assert (tmp_path / "report.html").is_file()
