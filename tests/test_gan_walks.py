"""gan-walks (seed document 003): the document's DCGAN networks layer for layer, and latent arithmetic measured
against a control (random directions of the same norm)."""

import numpy as np
import pytest
import torch
from torch import nn

from latentds.errors import InvalidParameterError
from latentds.zoo.base import create


def keras_parameters(size: int, width: int = 128, latent: int = 100) -> tuple[int, int]:
    """What Keras' model.summary() counts for the document's generator and discriminator at ``size`` px (stride-2
    stages scaled to the size: four at 128 px, two at 32 px)."""
    stages = int(np.log2(size // 8))
    generator = (latent + 1) * 8 * 8 * width + stages * (4 * 4 * width * width + width) + (8 * 8 * width * 3 + 3)
    discriminator = (3 * 3 * 3 * width + width) + stages * (3 * 3 * width * width + width) + (8 * 8 * width + 1)
    return generator, discriminator


@pytest.mark.parametrize("size, stages", [(32, 2), (128, 4)])
def test_the_document_networks_have_the_documented_layers(size, stages):
    torch.manual_seed(0)
    model = create("dcgan", image_size=size, architecture="document", batch_norm=False)  # width 128, latent 100
    g, d = model.generator, model.discriminator
    assert (model.config.stages, model.config.side) == (stages, 8)
    assert not any(isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) for m in model.modules())
    # generator: Dense 100 -> 8x8x128, LeakyReLU; four (here `stages`) 4x4 stride-2 transposed convs of 128
    # filters with LeakyReLU 0.2; an 8x8 "same" conv to 3 channels; tanh
    assert (g.project[0].in_features, g.project[0].out_features) == (100, 8 * 8 * 128)
    transposed = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.out_channels, m.kernel_size, m.stride) for m in transposed] == [(128, (4, 4), (2, 2))] * stages
    out = [m for m in g.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size, m.stride) for m in out] == [(3, (8, 8), (1, 1))]
    assert isinstance(g.features[-1], nn.Tanh)
    assert [m.negative_slope for m in g.modules() if isinstance(m, nn.LeakyReLU)] == [0.2] * (stages + 1)
    # discriminator: a 3x3 stride-1 conv, four (`stages`) 3x3 stride-2 convs, LeakyReLU 0.2, dropout 0.4, dense 1
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size, m.stride) for m in convs] == [(128, (3, 3), (1, 1))] + [
        (128, (3, 3), (2, 2))] * stages
    assert [m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)] == [0.2] * (stages + 1)
    assert [m.p for m in d.modules() if isinstance(m, nn.Dropout)] == [0.4]
    dense = [m for m in d.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in dense] == [(8 * 8 * 128, 1)]
    counts = (sum(p.numel() for p in g.parameters()), sum(p.numel() for p in d.parameters()))
    assert counts == keras_parameters(size)
    assert size != 128 or counts == (1_901_059, 602_113)
    # Keras' initialisation: zero biases
    assert all(float(m.bias.detach().abs().max()) == 0 for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear))
    with torch.no_grad():
        images = model.decode(torch.randn(2, 100))
        assert images.shape == (2, 3, size, size) and images.abs().max() < 1
        assert d(images).shape == (2, 1)


def test_the_compact_networks_stay_the_default_so_saved_models_load_as_saved(tmp_path):
    compact = create("dcgan", image_size=16, width=8, latent_dim=4)
    assert compact.config.architecture == "compact" and compact.config.stages == 4
    assert any(isinstance(m, nn.BatchNorm2d) for m in compact.modules())
    with pytest.raises(InvalidParameterError, match="architecture must be one of compact, document"):
        create("dcgan", architecture="keras")
    with pytest.raises(InvalidParameterError, match="8 times a power of two"):
        create("dcgan", image_size=48, architecture="document")
    with pytest.raises(InvalidParameterError, match="label_smoothing"):
        create("dcgan", label_smoothing=1.0)
    doc = create("dcgan", image_size=16, width=8, latent_dim=4, architecture="document", label_smoothing=0.1)
    doc.save_pretrained(tmp_path / "doc")
    from latentds.zoo.base import load_pretrained

    again = load_pretrained(tmp_path / "doc")
    assert again.config == doc.config
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), doc.state_dict().values()))


class LinearGenerator(nn.Module):
    """A synthetic generator: every pixel of image(z) is ``slope * z[0]``; the other dimensions do nothing."""

    def __init__(self, dim: int, slope: float = 0.1):
        super().__init__()
        self.dim, self.slope = dim, slope
        self.anchor = nn.Parameter(torch.zeros(1))  # a device to be found on

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (self.slope * z[:, :1]).view(-1, 1, 1, 1).expand(-1, 3, 8, 8).contiguous()


class Brightness(nn.Module):
    """A labeller predicting one factor, "brightness": the mean pixel."""

    output_names = ("brightness",)

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.config = type("Config", (), {"image_size": 8})()

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))[:, None]


def test_an_attribute_vector_moves_its_factor_and_a_random_direction_of_the_same_norm_does_not():
    from latentds.analysis.arithmetic import CONTROL_DRAWS, effect_with_control

    dim, slope = 64, 0.1
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((512, dim))
    model, labeller = LinearGenerator(dim, slope), Brightness()
    bright = latents[:, 0]
    high, low = bright >= np.quantile(bright, 0.75), bright <= np.quantile(bright, 0.25)
    vector = latents[high].mean(0) - latents[low].mean(0)  # mostly along z[0], plus noise in the other 63
    targets = latents[~high & ~low][:64]
    m = effect_with_control(model, labeller, targets, vector, 0)
    assert m["measured_on"] == 64 and m["control_draws"] == CONTROL_DRAWS
    # the attribute vector: brightness moves by slope * vector[0] for every target (a linear generator)
    assert m["effect"] == pytest.approx(slope * vector[0], rel=1e-4) and m["effect"] > 0.2
    # a random direction of the same norm: its component along z[0] is about |v| / sqrt(dim) either way
    norm = float(np.linalg.norm(vector))
    assert abs(m["control_effect"]) < 3 * m["control_effect_se"] + 1e-9
    assert m["control_abs_effect"] < 3 * slope * norm / np.sqrt(dim) < 0.5 * m["effect"]
    assert m["control_abs_effect"] > 0.1 * slope * norm / np.sqrt(dim)  # scaled to |v|, not a unit or zero step
    assert m["effect"] - m["control_abs_effect"] > 10 * np.hypot(m["effect_se"] + 1e-3, m["control_abs_effect_se"])
    # seeded: the same control twice; a vector with no brightness in it moves it no more than the control
    assert effect_with_control(model, labeller, targets, vector, 0) == m
    blind = vector.copy()
    blind[0] = 0.0
    none = effect_with_control(model, labeller, targets, blind, 0)
    assert none["effect"] == pytest.approx(0.0, abs=1e-6) and none["control_abs_effect"] > 0


@pytest.mark.slow
def test_celeba_attributes_give_the_documents_glasses_and_smile_groups(tmp_path):
    """The document's arithmetic on CelebA: a CNN trained on the pack's Eyeglasses / Smiling labels (bound by
    name) labels generated samples; the glasses vector (Eyeglasses=1 minus Eyeglasses=0) is added to the samples
    predicted Smiling=1, and its effect is measured beside the random-direction control."""
    import public_fixtures as fx

    from latentds.analysis import run
    from latentds.analysis.arithmetic import LABELLED, MEASURED, label_generated
    from latentds.datasets.pack import pack_dataset
    from latentds.zoo.base import load_pretrained
    from latentds.zoo.recipe import load_recipe
    from latentds.zoo.trainer import train

    fx.build_celeba(tmp_path / "root")
    data = tmp_path / "celeba"
    pack_dataset("celeba", tmp_path / "root", data, split="all", size=16, workers=1, progress=False)
    recipe = load_recipe("zoo/e2e_cnn", [f'data.shards="{data}"', "model.image_size=16", "model.width=4",
                                         "model.latent_dim=8", 'model.attributes=["Eyeglasses", "Smiling"]',
                                         "data.num_workers=0", "train.max_steps=2", "train.batch_size=2"])
    labeller = load_pretrained(train(recipe, tmp_path / "labeller", progress=False))
    assert labeller.output_names == ["Eyeglasses", "Smiling"]
    torch.manual_seed(0)
    dcgan = create("dcgan", image_size=16, width=8, latent_dim=100, architecture="document", batch_norm=False)
    _, predictions = label_generated(dcgan, labeller)
    with torch.no_grad():  # two steps teach nothing: centre its predictions so that both values of each occur
        labeller.head.bias += torch.as_tensor(0.5 - np.median(predictions, axis=0), dtype=torch.float32)
    _, predictions = label_generated(dcgan, labeller)
    glasses, smiling = np.round(predictions[:, 0]) == 1, np.round(predictions[:, 1]) == 1
    a = run(dcgan, data, tmp_path / "a", probes=["arithmetic"], labeller=labeller,
            groups=("Eyeglasses=1", "Eyeglasses=0", "Smiling=1"), progress=False)["arithmetic"]
    assert a["factor"] == "Eyeglasses" and (a["n_a"], a["n_b"]) == (int(glasses.sum()), LABELLED - int(glasses.sum()))
    assert a["applied_to"] == "predicted 'Smiling=1' (not in the first group)"
    onto = np.flatnonzero(smiling & ~glasses)
    assert a["targets"] == onto[:6].tolist() and a["measured_on"] == min(MEASURED, len(onto))
    assert all(np.isfinite(a[k]) for k in ("effect", "effect_se", "control_effect", "control_effect_se"))
    cuboids = run(dcgan, data, tmp_path / "b", probes=["arithmetic"], labeller=create(
        "e2e_cnn", image_size=16, width=4, latent_dim=8), groups=("Eyeglasses=1", "Eyeglasses=0"), progress=False)
    assert "the labeller predicts" in cuboids["skipped"]["arithmetic"]  # a cuboid labeller knows no glasses


def test_e2e_cnn_attributes_are_unbound_until_the_data_names_them():
    model = create("e2e_cnn", image_size=16, width=4, latent_dim=8, attributes=["Eyeglasses", "Smiling"])
    assert model.output_names == ["Eyeglasses", "Smiling"]  # no cuboid factor beside them
    batch = {"image": torch.zeros(2, 3, 16, 16), "factors": torch.zeros(2, 40), "factor_mask": torch.ones(2, 40,
                                                                                                          dtype=bool)}
    with pytest.raises(InvalidParameterError, match="not bound to the data's factors"):
        model.losses(batch)
    model.bind_factors([f"a{i}" for i in range(15)] + ["Eyeglasses"] + [f"b{i}" for i in range(5)] + ["Smiling"])
    assert model.factors_read == {"Eyeglasses": 15, "Smiling": 21} and torch.isfinite(model.losses(batch)["model"]["loss"])
    with pytest.raises(InvalidParameterError, match="'phi_0' is a cuboid factor"):
        create("e2e_cnn", attributes=["phi_0"])
    with pytest.raises(InvalidParameterError, match="names 'Smiling' twice"):
        create("e2e_cnn", attributes=["Smiling", "Smiling"])
