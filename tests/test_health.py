"""Health gates: each gate passes a model that does the thing and fails one that does not; a study turns every
finding that needs an untrained run into "not measured", naming the gate."""

import json

import pytest
import torch

from latentds.analysis import health
from latentds.datasets.shards import load_shards


@pytest.fixture(scope="module")
def renders(phi_set):
    """40 rendered 16 px images in [-1, 1]."""
    return next(iter(load_shards(str(phi_set[1]), batch_size=40, partial=True)))["image"]


def test_identical_samples_fail_the_diversity_gate_and_varied_ones_pass(renders):
    data = health.mean_pairwise_mse(renders)
    assert data > 0
    collapsed = renders[:1].expand_as(renders)
    assert health.mean_pairwise_mse(collapsed) == pytest.approx(0.0, abs=1e-9)
    assert not health.gate("sample_diversity", health.mean_pairwise_mse(collapsed) / data)["passed"]
    assert health.gate("sample_diversity", health.mean_pairwise_mse(renders.flip(0)) / data)["passed"]
    noise = torch.rand_like(renders) * 2 - 1  # uniform noise: far more different from itself than renders are
    assert not health.gate("sample_diversity", health.mean_pairwise_mse(noise) / data)["passed"]


def test_renders_have_a_black_background_and_a_foreground(renders):
    colour = health.background(renders)
    assert torch.allclose(colour, torch.full((3,), -1.0, dtype=colour.dtype))
    share = float(health.foreground(renders, colour).double().mean())
    assert 0.005 < share < 0.5


@pytest.mark.slow
def test_a_trivial_reconstruction_fails_the_reconstruction_gate_and_the_input_passes(renders):
    trivial = health.trivial_reconstructions(renders)
    perfect = health.image_baselines(renders, renders)
    assert perfect["model"]["mse"] == pytest.approx(0.0, abs=1e-9) and perfect["model"]["ssim"] == pytest.approx(1.0)
    assert health.reconstruction_gate(perfect)["passed"]
    assert perfect["background"]["foreground_mse"] > perfect["background"]["mse"] > 0  # the object is the error
    for name in ("background", "mean_image"):
        gate = health.reconstruction_gate(health.image_baselines(renders, trivial[name]))
        assert not gate["passed"] and gate["value"] >= 0.99 and "trivial" in gate["means"]
    # the input slightly blurred passes, though it is blurred: the gate asks for better than nothing
    slight = health.image_baselines(renders, 0.9 * renders + 0.1 * trivial["blurred"])
    assert health.reconstruction_gate(slight)["passed"]


def test_grey_reconstructions_of_coloured_renders_fail_the_colour_gate_and_coloured_ones_pass(renders):
    assert health.colour_gate(renders, renders)["passed"]
    assert health.colour_gate(renders, renders)["value"] == pytest.approx(0.0, abs=1e-12)
    grey = renders.mean(1, keepdim=True).expand_as(renders)  # right shapes and brightness, no colour
    failed = health.colour_gate(renders, grey)
    assert not failed["passed"] and failed["value"] >= 1.0 and "grey" in failed["means"]
    assert health.reconstruction_gate(health.image_baselines(renders, grey))["passed"]  # only colour catches it
    assert not health.colour_gate(renders, renders.mean(0, keepdim=True).expand_as(renders))["passed"]
    assert health.colour_gate(renders, 0.8 * renders + 0.2 * grey)["passed"]  # faded colours still pass
    assert health.colour_gate(grey, grey) is None  # grey data: the gate does not apply


def test_samples_in_one_colour_scheme_fail_the_sample_colour_gate_and_varied_colours_pass(renders):
    # Phi renders: every chain has the same colours, so the gate does not apply to them
    assert health.sample_colour_gate(renders, renders) is None
    # data whose colours differ per image: each render's foreground tinted red, green or blue in turn
    grey = renders.mean(1, keepdim=True).expand_as(renders)
    mask = health.foreground(renders, health.background(renders)).to(renders.dtype)
    tints = torch.tensor([[0.5, -0.25, -0.25], [-0.25, 0.5, -0.25], [-0.25, -0.25, 0.5]])
    varied = grey + mask * tints[torch.arange(len(renders)) % 3][:, :, None, None]
    assert health.sample_colour_gate(varied, varied)["value"] == pytest.approx(1.0)
    assert health.sample_colour_gate(varied, varied.flip(0))["passed"]
    one_scheme = grey + mask * tints[0][None, :, None, None]  # the right shapes, always tinted red
    failed = health.sample_colour_gate(varied, one_scheme)
    assert not failed["passed"] and failed["value"] < 0.25 and "colour" in failed["means"]
    assert health.sample_colour_gate(varied, grey)["value"] == pytest.approx(0.0, abs=1e-12)
    assert health.mean_pairwise_mse(renders) / health.mean_pairwise_mse(varied) > 0.1  # diversity alone passes it


def test_active_units_count_latents_that_vary_with_the_input():
    latents = torch.zeros(100, 4).numpy()
    assert not health.active_units(latents)["passed"]
    latents[:, 2] = torch.linspace(-1, 1, 100).numpy()
    assert health.active_units(latents)["value"] == 1 and health.active_units(latents)["passed"]


def test_the_discriminator_gate_reads_the_training_log(tmp_path):
    rows = [{"step": i, "discriminator/accuracy": 0.7} for i in range(8)] + \
           [{"step": 8 + i, "discriminator/accuracy": 1.0} for i in range(4)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gate = health.discriminator_gate(tmp_path)
    assert not gate["passed"] and gate["value"] == 1.0 and gate["rows"] == 3  # the last quarter
    rows[-4:] = [{"step": 8 + i, "discriminator/accuracy": 0.8} for i in range(4)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert health.discriminator_gate(tmp_path)["passed"]
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0}) + "\n")
    assert health.discriminator_gate(tmp_path) is None


class _Split(torch.nn.Module):
    """A 'model' with an s/z split whose decoder ignores z (or not): decode paints s's value, plus z's if used."""

    def __init__(self, use_z: bool):
        super().__init__()
        self.use_z = use_z

    def partition(self):
        return {"s": slice(0, 1), "z": slice(1, 2)}

    def encode(self, x):
        return torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3))], 1)

    def decode(self, codes):
        value = codes[:, :1] + (codes[:, 1:2] if self.use_z else 0)
        return value[:, :, None, None].expand(-1, 3, 4, 4) * torch.linspace(0.5, 1, 4)


def test_the_swap_grid_gate_fails_a_decoder_that_ignores_z(renders):
    spread = health.spread(renders)
    assert health.swap_grid_gate(_Split(True), renders, spread, "cpu")["passed"]
    blind = health.swap_grid_gate(_Split(False), renders, spread, "cpu")
    assert not blind["passed"] and blind["over_z"] == pytest.approx(0.0, abs=1e-9) and blind["over_s"] > 0




@pytest.mark.slow
def test_a_deliberately_collapsed_model_is_not_trained_and_its_findings_are_not_measured(tmp_path):
    """A VAE whose decoder never sees its input (its codes are zeroed) trains without error; the study reports it
    as not trained, naming the gates, and the finding that needs it as not measured."""
    from latentds.studies import run_study
    from latentds.zoo.base import REGISTRY
    from latentds.zoo.models.vae import VAE

    with REGISTRY.scope():
        class BlindVAE(VAE, family="test_blind_vae"):
            def decode(self, z):
                return self.decoder(z * 0)

            def losses(self, batch, step=0):
                from latentds.zoo.base import images

                x = images(batch)
                recon = (self.decode(self.encode(x)) - x).pow(2).flatten(1).sum(1).mean()
                return {"model": {"loss": recon, "recon": recon}}

        recipe = tmp_path / "blind.toml"
        recipe.write_text('[model]\nfamily = "test_blind_vae"\nimage_size = 16\nlatent_dim = 4\nwidth = 8\n'
                          '[data]\nnum_workers = 0\n[train]\nepochs = 1\nmax_steps = 4\nbatch_size = 8\n')
        study = tmp_path / "blind-study.toml"
        study.write_text(f"""description = "a collapsed model"
paper = "none"
[scales]
smoke = "tiny"
cpu = "tiny"
full = "tiny"
[data.phi]
preset = "phi"
n = 48
size = 16
shard_size = 16
[[run]]
name = "blind"
recipe = "{recipe}"
data = "phi"
analyze = {{probes = ["metrics"], n = 32}}
[[table]]
title = "error"
metric = "metrics.mse"
runs = "*"
[[finding]]
claim = "the blind model reconstructs worse than a trivial image"
runs = "blind"
left = "metrics.mse"
op = ">"
right = "metrics.baselines.mean_image.mse"
source = "literature"
reference = "none: a test"
""")
        results = run_study(str(study), tmp_path / "out", scale="smoke", seeds=1, progress=False)
    assert results["health"]["blind"]["trained"] is False
    failed = set(results["health"]["blind"]["failed"])
    assert {"decoder_sensitivity", "sample_diversity"} <= failed
    verdict = results["findings"][0]["verdict"]
    assert verdict.startswith("not measured") and "decoder_sensitivity" in verdict and "blind" in verdict
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "**not trained**" in markdown and "decoder_sensitivity: seed 0" in markdown
    assert "| blind (not trained) |" in markdown
