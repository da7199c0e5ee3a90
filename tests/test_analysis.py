"""Latent probes: encoding (saved and reused), PCA, interpolation paths, the report and the CLI."""

import json

import numpy as np
import pytest
from analysis_sets import render_analysis_sets
import torch
from click.testing import CliRunner

from latentds.analysis.encode import Codes, encode_dataset
from latentds.analysis.feature_network import DEFAULT as DEFAULT_FEATURE_NETWORK
from latentds.analysis.feature_network import feature_network_name
from latentds.analysis.interpolation import lerp, slerp
from latentds.analysis.probes import run
from latentds.cli import main
from latentds.render import RenderSpec, render_shards
from latentds.zoo.base import create
from latentds.zoo.capabilities import Capabilities


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    base = tmp_path_factory.mktemp("analysis")
    render_analysis_sets(base, seed=2, n=48, seq_n=24)
    torch.manual_seed(0)
    model = create("vae", image_size=16, width=8, latent_dim=6).eval()
    model.save_pretrained(base / "model")
    return base, model


def test_slerp_keeps_the_arc_and_lerp_the_line():
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    t = torch.linspace(0, 1, 5)
    arc, line = slerp(z0, z1, t), lerp(z0, z1, t)
    assert torch.allclose(arc[0], z0) and torch.allclose(arc[-1], z1)
    assert torch.allclose(arc.norm(dim=1), torch.full((5,), 3.0))  # stays on the circle
    assert line[2].norm() < 2.2  # the chord cuts inside it
    assert torch.allclose(slerp(z0, 2 * z0, t), lerp(z0, 2 * z0, t))  # parallel: falls back to the line


def test_codes_are_saved_and_loaded_exactly(sets, tmp_path):
    base, model = sets
    codes = encode_dataset(model, base / "varied", n=40, progress=False)
    assert codes.latents.shape == (40, 6) and not hasattr(codes, "samples")
    table = __import__("latentds").load_shards(base / "varied").factor_table
    assert codes.factor_names == [row["name"] for row in table]
    assert codes.factors.shape == (40, len(codes.factor_names)) and codes.factor_mask.dtype == bool
    assert len(codes.labels) == 40
    assert codes.keys == [f"{i:09d}" for i in range(40)]
    with torch.no_grad():
        first = model.encode(next(iter(__import__("latentds").load_shards(base / "varied")))["image"][None])
    assert np.allclose(codes.latents[0], first.numpy()[0], atol=1e-5)
    codes.save(tmp_path)
    again = Codes.load(tmp_path)
    assert np.array_equal(again.latents, codes.latents) and np.array_equal(again.factor_mask, codes.factor_mask)
    assert again.labels == codes.labels and again.source == json.loads(json.dumps(codes.source))
    assert again.factor_names == codes.factor_names


@pytest.mark.slow
def test_run_writes_figures_metrics_and_a_self_contained_report(sets, tmp_path):
    base, model = sets
    metrics = run(model, base / "varied", tmp_path, probes=["pca", "interpolation"], n=40,
                  sequence_data=base / "seq", progress=False)
    pca = metrics["pca"]
    assert len(pca["explained_variance_ratio"]) == 5 and sorted(pca["explained_variance_ratio"], reverse=True) \
        == pca["explained_variance_ratio"]
    assert "phi_0" in pca["factor_correlation"]["pc1"]
    interp = metrics["interpolation"]["group1"]
    assert interp["factor"] == "theta_1" and set(interp["image_mse"]) == {"natural", "linear", "spherical"}
    assert interp["factor_correlation"]["linear"] == pytest.approx(1.0)  # the line moves evenly with the factor
    figures = {p.name for p in (tmp_path / "figures").iterdir()}
    assert {"pca_strips.png", "interpolation_group0.png", "interpolation_group2.png"} <= figures
    report = (tmp_path / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 4 and "principal components" in report
    assert json.loads((tmp_path / "metrics.json").read_text())["skipped"] == {}
    stamp = (tmp_path / "latents.safetensors").stat().st_mtime_ns
    run(model, base / "varied", tmp_path, probes=["pca"], n=40, progress=False)
    assert (tmp_path / "latents.safetensors").stat().st_mtime_ns == stamp  # the latents were reused


def test_probes_that_cannot_apply_say_why(sets, tmp_path):
    base, model = sets
    metrics = run(model, base / "varied", tmp_path, probes=["interpolation", "partition"], n=16, progress=False)
    assert "--sequence" in metrics["skipped"]["interpolation"]
    assert "no s/z partition" in metrics["skipped"]["partition"]
    assert "Skipped probes" in (tmp_path / "report.html").read_text()


def test_cli_analyze(sets, tmp_path):
    base, _ = sets
    result = CliRunner().invoke(main, ["analyze", str(base / "model"), "--data", str(base / "varied"),
                                       "--out", str(tmp_path), "--probes", "pca", "--n", "32", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.stdout and (tmp_path / "report.html").is_file()
    bad = CliRunner().invoke(main, ["analyze", str(base / "model"), "--data", str(base / "varied"),
                                    "--out", str(tmp_path / "x"), "--probes", "umapp"])
    assert bad.exit_code == 2 and "unknown probe 'umapp'" in bad.stderr


@pytest.mark.slow
def test_factor_probes_find_what_the_latents_hold():
    from latentds.analysis.factor_probes import factor_probes

    rng = np.random.default_rng(0)
    factors = np.column_stack([rng.uniform(-1, 1, 400), rng.integers(2, 5, 400)]).astype(float)
    noise = rng.normal(size=(400, 3))
    holds = np.column_stack([factors[:, 0] * 3, factors[:, 1], noise[:, 0]])
    result = factor_probes(holds, factors, ["angle", "count"])
    assert result["angle"]["kind"] == "r2" and result["angle"]["linear"] > 0.95
    assert result["count"]["kind"] == "accuracy" and result["count"]["linear"] > 0.95
    blind = factor_probes(noise, factors, ["angle", "count"])
    assert blind["angle"]["linear"] < 0.1 and blind["count"]["linear"] < result["count"]["chance"] + 0.2


def test_attribute_vectors_move_latents_between_groups():
    from latentds.analysis.arithmetic import apply_vector, attribute_vector

    latents = np.array([[0.0, 0.0], [0.0, 2.0], [4.0, 0.0], [4.0, 2.0]])
    vector = attribute_vector(latents, latents[:, 0] > 2, latents[:, 0] < 2)
    assert np.allclose(vector, [4.0, 0.0])
    model = create("vae", image_size=16, width=8, latent_dim=2).eval()
    images = apply_vector(model, latents[:1], vector, scales=(0.0, 1.0))
    with torch.no_grad():
        expected = model.decode(torch.tensor([[0.0, 0.0], [4.0, 0.0]]))
    assert torch.allclose(images, expected, atol=1e-5)


@pytest.mark.slow
def test_factor_and_arithmetic_probes_in_the_report(sets, tmp_path):
    base, model = sets
    metrics = run(model, base / "varied", tmp_path, probes=["factors", "arithmetic"], n=48, progress=False)
    assert "phi_0" in metrics["factors"] and {"linear", "mlp", "chance"} <= set(metrics["factors"]["phi_0"])
    assert metrics["arithmetic"]["n_a"] > 0 and "quartile of" in metrics["arithmetic"]["vector"]
    assert (tmp_path / "figures" / "arithmetic.png").is_file()


@pytest.mark.slow
def test_umap_view_with_interpolation_paths(sets, tmp_path):
    base, model = sets
    metrics = run(model, base / "varied", tmp_path, probes=["interpolation", "umap"], n=48,
                  sequence_data=base / "seq", progress=False)
    by_label = run(model, base / "varied", tmp_path / "labels", probes=["umap"], n=48, colour_by="preset",
                   dims=(4, 1), progress=False)
    assert by_label["umap"]["coloured_by"] == "preset (1 categories)" and by_label["umap"]["dims"] == [4, 1]
    assert metrics["umap"]["overlaid_paths"] == ["linear", "natural", "spherical"]
    assert metrics["umap"]["coloured_by"] and len(metrics["umap"]["dims"]) == 2
    assert {"umap.png", "latent_dims.png"} <= {p.name for p in (tmp_path / "figures").iterdir()}
    assert "UMAP of 48 latents" in (tmp_path / "report.html").read_text()


class _Halves(torch.nn.Module):
    """A stand-in partitioned model: s is the first half of the latent, z the second; decode draws both."""

    family = "halves"
    capabilities = Capabilities(partitioned=True)

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def partition(self):
        return {"s": slice(0, 2), "z": slice(2, 4)}

    def decode(self, latents):
        images = torch.zeros(len(latents), 3, 4, 4)
        images[:, 0] = latents[:, :2].sum(1)[:, None, None]  # channel 0 shows s
        images[:, 1] = latents[:, 2:].sum(1)[:, None, None]  # channel 1 shows z
        return images * self.weight


def test_swap_grid_takes_s_from_rows_and_z_from_columns():
    from latentds.analysis.partition import swap_grid

    latents = np.array([[1.0, 0, 5, 0], [2.0, 0, 6, 0], [3.0, 0, 7, 0]])
    grid = swap_grid(_Halves(), latents)
    assert grid.shape == (9, 3, 4, 4)
    s_shown, z_shown = grid[:, 0, 0, 0].reshape(3, 3), grid[:, 1, 0, 0].reshape(3, 3)
    assert torch.equal(s_shown, torch.tensor([[1.0] * 3, [2.0] * 3, [3.0] * 3]))
    assert torch.equal(z_shown, torch.tensor([[5.0, 6.0, 7.0]] * 3))


@pytest.mark.slow
def test_classifier_probe_finds_the_label_in_s_not_in_z():
    from latentds.analysis.partition import classifier_probe, predictor_probe

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    s = np.eye(4)[labels][:, :2] * 2 + rng.normal(0, 0.1, (400, 2)) + labels[:, None] * 0.5
    z = rng.normal(size=(400, 2))
    on_s, on_z = classifier_probe(s, labels, epochs=20), classifier_probe(z, labels, epochs=20)
    assert on_s["val_accuracy"] > 0.9 and on_z["val_accuracy"] < on_z["chance"] + 0.15
    latents = np.column_stack([s, z])
    result = predictor_probe(_Halves(), latents, epochs=5)
    assert set(result) == {"s_to_z", "z_to_s"} and result["s_to_z"]["regeneration_mse"] > 0


@pytest.mark.slow
def test_reconstruction_metrics_and_fid_name_their_feature_network(sets, tmp_path):
    base, model = sets
    metrics = run(model, base / "varied", tmp_path, probes=["metrics", "fid"], n=32, progress=False)
    images = next(iter(__import__("latentds").load_shards(base / "varied", batch_size=32)))["image"]
    with torch.no_grad():
        recon = model.reconstruct(images)
    assert metrics["metrics"]["mse"] == pytest.approx(((recon - images) ** 2).flatten(1).mean(1).mean().item(),
                                                      rel=1e-5)  # the mean per-image error of these 32 images
    assert metrics["metrics"]["ssim_convention"].startswith("Wang et al. 2004")
    for part in ("reconstructions", "samples"):  # by default the packaged frozen network, not the model's encoder
        assert metrics["fid"][part]["feature_network"] == DEFAULT_FEATURE_NETWORK
        assert metrics["fid"][part]["n_real"] == 32 and metrics["fid"][part]["fid"] >= -1e-6
    assert "reconstructions.png" in {p.name for p in (tmp_path / "figures").iterdir()}


@pytest.mark.slow
def test_factorvae_score_renders_fresh_batches_with_one_factor_fixed(sets, tmp_path):
    from latentds.render.factors import sample_labels, set_factor

    labels = set_factor(sample_labels("varied", 0, 1, 16), "phi_2", 33.0)
    assert labels["n_cuboids"] == 4 and labels["joints"][2]["phi"] == 33.0 and len(labels["colors"]) == 4
    base, model = sets
    settings = {"batch_size": 8, "n_train": 12, "n_eval": 6, "n_variance": 64}
    metrics = run(model, base / "varied", tmp_path, probes=["factorvae"], n=16, factorvae=settings, progress=False)
    result = metrics["factorvae"]
    accuracy = result["factor_vae_eval_accuracy"]
    assert "phi_0" in result["factors"] and result["settings"]["preset"] == "varied"
    assert result["factor_vae_eval_accuracy_se"] == pytest.approx((accuracy * (1 - accuracy) / 6) ** 0.5)
    assert {k: result["settings"][k] for k in settings} == settings and result["settings"]["n_latents"] == 6


def test_groups_and_colours_come_from_labels_factors_or_ids(sets, tmp_path):
    from latentds.analysis.probes import select, values_of

    base, model = sets
    codes = encode_dataset(model, base / "varied", n=40, progress=False)
    four = select(codes, "n_cuboids=4")
    assert four.sum() == sum(lab["n_cuboids"] == 4 for lab in codes.labels) > 0
    assert (select(codes, "phi_0>0") == (values_of(codes, "phi_0") > 0)).all()
    assert select(codes, "ids:000000003,000000007").sum() == 2
    with pytest.raises(Exception, match="no factor or label 'smile'"):
        values_of(codes, "smile")
    metrics = run(model, base / "varied", tmp_path, probes=["arithmetic"], n=40,
                  groups=("n_cuboids=4", "n_cuboids=2"), progress=False)
    assert metrics["arithmetic"]["n_a"] == four.sum() and "n_cuboids=4" in metrics["arithmetic"]["vector"]
    assert "attribute vector" in (tmp_path / "report.html").read_text()


@pytest.fixture
def forget_test_families():
    """Families a test defines leave the registry afterwards, so families() never depends on test order."""
    from latentds.zoo.base import REGISTRY

    with REGISTRY.scope():
        yield


def test_models_without_encoder_and_data_without_factors_are_skipped_with_reasons(sets, tmp_path,
                                                                                   forget_test_families):
    import public_fixtures as fx

    from latentds.datasets.pack import pack_dataset
    from latentds.zoo.base import LatentModel, ModelConfig

    class DecoderOnly(LatentModel, family="test_decoder_only"):
        Config = ModelConfig
        capabilities = Capabilities(encoder=False)

        def __init__(self, config=None):
            super().__init__(config)
            self.net = torch.nn.Linear(self.config.latent_dim, 3 * 16 * 16)

        def decode(self, z):
            return torch.tanh(self.net(z)).view(-1, 3, 16, 16)

        def losses(self, x, step=0):
            return {"model": {"loss": self.decode(torch.zeros(len(x), self.config.latent_dim)).pow(2).mean()}}

    base, model = sets
    generator = DecoderOnly(ModelConfig(image_size=16, latent_dim=4))
    metrics = run(generator, base / "varied", tmp_path / "gen", probes=["pca", "umap", "scores"], progress=False)
    assert set(metrics["skipped"]) == {"pca", "umap", "scores"}
    assert all("no encoder" in why for why in metrics["skipped"].values())

    (tmp_path / "coco").mkdir()  # COCO's labels are boxes and captions: no factor table
    root = fx.build_coco(tmp_path / "coco")["root"]
    pack_dataset("coco", root, tmp_path / "packed", size=16, workers=1, progress=False)
    metrics = run(model, tmp_path / "packed", tmp_path / "out", probes=["scores", "factors", "pca"], n=8,
                  progress=False)
    assert "needs ground-truth factors" in metrics["skipped"]["scores"]
    assert "needs ground-truth factors" in metrics["skipped"]["factors"] and "pca" in metrics


def test_probe_names_in_the_cli_help_are_every_probe():
    from latentds.analysis.probes import PROBES
    from latentds.cli.analysis import PROBE_NAMES

    assert list(PROBE_NAMES) == list(PROBES)
    help_text = " ".join(CliRunner().invoke(main, ["analyze", "--help"]).stdout.split())
    assert f"[default: all]: {', '.join(PROBES)}." in help_text


@pytest.mark.slow
def test_a_model_without_encoder_gets_walks_and_arithmetic_on_generated_samples(sets, tmp_path):
    base, _ = sets
    torch.manual_seed(0)
    dcgan = create("dcgan", image_size=16, width=8, latent_dim=4)
    assert not dcgan.capabilities.encoder
    metrics = run(dcgan, base / "varied", tmp_path / "all", n=16, progress=False)
    skipped = metrics["skipped"]
    # FID runs on its samples, in the packaged feature network (not skipped for want of an encoder)
    needs_encoder = {"pca", "interpolation", "umap", "metrics", "scores", "factors", "partition", "factorvae",
                     "verification"}
    assert set(skipped) == needs_encoder | {"arithmetic"}
    assert set(metrics["fid"]) == {"samples", "floor", "feature_network"}
    assert metrics["fid"]["feature_network"] == DEFAULT_FEATURE_NETWORK
    assert all("dcgan has no encoder" in skipped[p] for p in needs_encoder)
    assert "without an encoder" in skipped["arithmetic"] and "--groups ids:" in skipped["arithmetic"]
    figures = {p.name for p in (tmp_path / "all" / "figures").iterdir()}
    assert figures == {"walks.png", "generated.png"}
    report = (tmp_path / "all" / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 2 and "row-major from 0" in report
    assert "no encoder" in report and not (tmp_path / "all" / "latents.safetensors").exists()

    from PIL import Image

    assert Image.open(tmp_path / "all" / "figures" / "generated.png").size == (8 * 17 + 1,) * 2  # 8 x 8 of 16 px

    metrics = run(dcgan, base / "varied", tmp_path / "ids", probes=["arithmetic"], groups=("ids:0,1,2", "ids:3,4"),
                  progress=False)
    arithmetic = metrics["arithmetic"]
    assert arithmetic["ids_a"] == [0, 1, 2] and arithmetic["ids_b"] == [3, 4]
    assert (arithmetic["n_a"], arithmetic["n_b"]) == (3, 2) and arithmetic["targets"] == [5, 6, 7, 8, 9, 10]
    assert "[0, 1, 2]" in arithmetic["vector"] and arithmetic["vector_norm"] > 0
    codes = dcgan.prior(64, torch.Generator().manual_seed(0)).numpy()
    assert arithmetic["vector_norm"] == pytest.approx(
        float(np.linalg.norm(codes[:3].mean(0) - codes[3:5].mean(0))), rel=1e-5)
    assert {"generated.png", "arithmetic.png"} <= {p.name for p in (tmp_path / "ids" / "figures").iterdir()}
    assert metrics["skipped"] == {}

    by_label = run(dcgan, base / "varied", tmp_path / "label", probes=["arithmetic"],
                   groups=("n_cuboids=4", "n_cuboids=2"), progress=False)
    assert "choose two groups of generated samples by id" in by_label["skipped"]["arithmetic"]
    assert (tmp_path / "label" / "figures" / "generated.png").is_file()
    out_of_range = run(dcgan, base / "varied", tmp_path / "range", probes=["arithmetic"], groups=("ids:1", "ids:64"),
                       progress=False)
    assert "0..63" in out_of_range["skipped"]["arithmetic"]


@pytest.mark.slow
def test_spherical_walks_keep_the_code_norms_and_linear_walks_dip(sets, tmp_path):
    base, model = sets
    torch.manual_seed(0)
    dcgan = create("dcgan", image_size=16, width=8, latent_dim=16)
    walks = run(dcgan, base / "varied", tmp_path / "gan", probes=["walks"], progress=False)["walks"]
    linear, spherical = walks["code_norm_by_step"]["linear"], walks["code_norm_by_step"]["spherical"]
    assert len(linear) == len(spherical) == 6 and walks["pairs"] == 4
    ends = (linear[0], linear[-1])
    assert spherical[0] == pytest.approx(ends[0], rel=1e-5) and spherical[-1] == pytest.approx(ends[1], rel=1e-5)
    assert all(min(ends) - 1e-4 <= norm <= max(ends) + 1e-4 for norm in spherical)  # the great circle keeps them
    assert min(linear[1:-1]) < 0.9 * min(ends)  # the chord dips towards the origin
    assert walks["norm_ratio_min"]["spherical"] == pytest.approx(1.0, abs=1e-4)
    assert walks["norm_ratio_min"]["linear"] < 0.9
    assert walks["mean_code_norm"]["linear"] < walks["mean_code_norm"]["spherical"]
    assert walks["image_step_mse"]["linear"] > 0 and walks["image_step_mse"]["spherical"] > 0
    assert (tmp_path / "gan" / "figures" / "walks.png").is_file()
    assert "great circle" in (tmp_path / "gan" / "report.html").read_text()
    with_encoder = run(model, base / "varied", tmp_path / "vae", probes=["walks"], n=16, progress=False)
    assert with_encoder["walks"]["norm_ratio_min"]["linear"] < with_encoder["walks"]["norm_ratio_min"]["spherical"]


def test_walks_rows_are_linear_then_spherical_per_pair():
    from latentds.analysis.interpolation import prior_walks

    torch.manual_seed(0)
    model = create("vae", image_size=16, width=8, latent_dim=4).eval()
    result = prior_walks(model, pairs=2, steps=3)
    codes = model.prior(4, torch.Generator().manual_seed(0))
    assert result["images"].shape == (12, 3, 16, 16)
    assert torch.allclose(result["linear"][1], lerp(codes[2], codes[3], torch.linspace(0, 1, 3)), atol=1e-6)
    with torch.no_grad():
        row3 = model.decode(slerp(codes[2], codes[3], torch.linspace(0, 1, 3)))  # pair 1, spherical: 4th row
    assert torch.allclose(result["images"][9:12], row3, atol=1e-5)


@pytest.mark.slow
def test_partition_probe_on_a_cycle_vae(sets, tmp_path):
    base, _ = sets
    torch.manual_seed(0)
    cycle = create("cycle_vae", image_size=16, width=8, class_dim=2, style_dim=3, latent_dim=5).eval()
    assert cycle.capabilities.partitioned
    metrics = run(cycle, base / "varied", tmp_path, probes=["partition"], n=48, progress=False)
    assert metrics["skipped"] == {}
    partition = metrics["partition"]
    assert set(partition["predictors"]) == {"s_to_z", "z_to_s"}
    assert partition["predictors"]["s_to_z"]["regeneration_mse"] >= 0
    assert partition["classifier"]["label"] == "n_cuboids" and "val_accuracy" in partition["classifier"]["s"]
    assert (tmp_path / "figures" / "swap_grid.png").is_file()


def test_encoding_follows_the_declared_posterior(sets):
    from latentds.zoo.models.vae import VAE, VAEConfig

    class EncodeOnly(VAE):  # a posterior method, but not declared: encoding must use `encode`
        capabilities = Capabilities(posterior=False)

        def posterior(self, x):
            raise AssertionError("posterior() called on a model that does not declare a posterior")

        def encode(self, x):
            return self.encoder(x).chunk(2, dim=1)[0]

    base, _ = sets
    torch.manual_seed(0)
    model = EncodeOnly(VAEConfig(image_size=16, width=8, latent_dim=4)).eval()
    codes = encode_dataset(model, base / "varied", n=8, progress=False)
    assert codes.latents.shape == (8, 4)
    first = next(iter(__import__("latentds").load_shards(base / "varied")))["image"][None]
    with torch.no_grad():
        assert np.allclose(codes.latents[0], model.encode(first).numpy()[0], atol=1e-5)


@pytest.mark.slow
def test_the_partition_probe_says_how_much_of_each_factor_s_and_z_carry(tmp_path):
    from latentds.analysis import run
    from latentds.render import RenderSpec, render_shards
    from latentds.zoo.base import create

    data = tmp_path / "ids"
    render_shards(RenderSpec("varied", n=64, size=16, shard_size=32, identities=4), data, workers=1, progress=False)
    model = create("cycle_vae", image_size=16, width=8, class_dim=2, style_dim=3, latent_dim=5)
    metrics = run(model, data, tmp_path / "a", probes=["partition"], n=64, progress=False)["partition"]
    assert metrics["classifier"]["label"] == "identity"
    for part in ("s", "z"):
        assert {"phi_0", "light_azimuth"} <= set(metrics[f"factors_{part}"])
        assert metrics[f"factors_{part}"]["phi_0"]["kind"] == "r2"


@pytest.mark.slow
def test_a_labeller_chooses_the_arithmetic_groups_of_generated_samples_from_a_factor(sets, tmp_path):
    from latentds.analysis.arithmetic import (CONTROL_DRAWS, LABELLED, MEASURED, apply_vector, label_generated,
                                              predict)

    base, _ = sets
    torch.manual_seed(0)
    dcgan = create("dcgan", image_size=16, width=8, latent_dim=4)
    labeller = create("e2e_cnn", image_size=16, width=4, latent_dim=8)
    metrics = run(dcgan, base / "varied", tmp_path / "auto", probes=["arithmetic", "fid"], feature_model=labeller,
                  progress=False)
    assert metrics["skipped"] == {}
    a = metrics["arithmetic"]
    names = labeller.output_names
    latents, predictions = label_generated(dcgan, labeller)
    column = predictions[:, names.index(a["factor"])]
    # the default factor is the one whose predictions spread most relative to its range
    spread = predictions.std(axis=0) / labeller.span.numpy()
    assert a["factor"] == names[int(np.argmax(spread))]
    lo, hi = np.quantile(column, [0.25, 0.75])
    assert (a["n_a"], a["n_b"]) == (int((column >= hi).sum()), int((column <= lo).sum()))
    assert a["n_a"] + a["n_b"] <= LABELLED and all(lo < column[t] < hi for t in a["targets"])
    assert len(a["targets"]) == 6 and a["labeller"].startswith("e2e_cnn@")
    # the effect is measured on the decoded targets: scale 0 is the targets themselves
    vector = latents[column >= hi].mean(0) - latents[column <= lo].mean(0)
    assert a["vector_norm"] == pytest.approx(float(np.linalg.norm(vector)), rel=1e-5)
    moved = predict(labeller, apply_vector(dcgan, latents[a["targets"]], vector))[:, names.index(a["factor"])]
    assert a["predicted_by_scale"] == pytest.approx(moved.reshape(6, 4).mean(0).tolist(), rel=1e-4)
    assert a["predicted_before"] == pytest.approx(float(column[a["targets"]].mean()), rel=1e-4)
    # beside the effect, its control: random directions of the same norm, on the same samples in neither group
    neither = int(((column < hi) & (column > lo)).sum())
    assert a["measured_on"] == min(MEASURED, neither) and a["control_draws"] == CONTROL_DRAWS
    assert all(np.isfinite(a[k]) for k in ("effect", "effect_se", "control_effect", "control_effect_se",
                                            "control_abs_effect", "control_abs_effect_se"))
    # FID of a model without an encoder: its samples only, named by the labeller's hash
    assert set(metrics["fid"]) == {"samples", "floor", "feature_network"}
    assert metrics["fid"]["samples"]["feature_network"] == feature_network_name(labeller) != DEFAULT_FEATURE_NETWORK

    by_value = run(dcgan, base / "varied", tmp_path / "expr", probes=["arithmetic"], feature_model=labeller,
                   groups=(f"{a['factor']}>{hi}", f"{a['factor']}<{lo}"), progress=False)["arithmetic"]
    assert (by_value["n_a"], by_value["n_b"]) == (int((column > hi).sum()), int((column < lo).sum()))
    bad = run(dcgan, base / "varied", tmp_path / "bad", probes=["arithmetic"], feature_model=labeller,
              groups=("Smiling=1", "Smiling=0"), progress=False)
    assert "the labeller predicts" in bad["skipped"]["arithmetic"]


@pytest.mark.slow
def test_umap_layout_warns_nothing_about_choices_we_made():
    import warnings

    from latentds.analysis.embedding import umap_embedding

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the seeded single thread and our kNN graph are deliberate
        placed = umap_embedding(np.random.default_rng(0).normal(size=(60, 8)))
    assert placed.shape == (60, 2) and np.isfinite(placed).all()


@pytest.mark.slow
def test_analyze_cli_takes_a_feature_model_that_labels_generated_samples(sets, tmp_path):
    base, _ = sets
    torch.manual_seed(0)
    create("dcgan", image_size=16, width=8, latent_dim=4).save_pretrained(tmp_path / "gan")
    create("e2e_cnn", image_size=16, width=4, latent_dim=8).save_pretrained(tmp_path / "cnn")
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "gan"), "--data", str(base / "varied"), "--out",
                                       str(tmp_path / "a"), "--probes", "arithmetic,fid", "--feature-model",
                                       str(tmp_path / "cnn"), "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["arithmetic"]["labeller"].startswith("e2e_cnn@") and "quartile" in metrics["arithmetic"]["vector"]
    assert metrics["fid"]["samples"]["feature_network"] == metrics["arithmetic"]["labeller"]
