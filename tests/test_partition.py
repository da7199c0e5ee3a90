"""The s/z probes of analysis/partition.py as the cycle-identity study's source document defines them: the
classifier's and predictors' layers, and the regeneration error normalised by a random swap of the predicted part."""

import numpy as np
import pytest
import torch
from torch import nn

from latentds.analysis.partition import (classifier_net, derangement, predictor_net, predictor_probe,
                                         regeneration_error)
from latentds.zoo.capabilities import Capabilities


def _layers(net):
    return [(name, type(m).__name__, getattr(m, "in_features", getattr(m, "num_features", None)),
             getattr(m, "out_features", None)) for name, m in net.named_children()]


def test_the_classifier_is_the_documents_512_256_256_classes_with_batch_norm_and_leaky_relu():
    net = classifier_net(512, 672)
    assert _layers(net) == [("fc1", "Linear", 512, 256), ("batch_norm1", "BatchNorm1d", 256, None),
                            ("leaky_relu1", "LeakyReLU", None, None), ("fc2", "Linear", 256, 256),
                            ("batch_norm2", "BatchNorm1d", 256, None), ("leaky_relu2", "LeakyReLU", None, None),
                            ("fc3", "Linear", 256, 672)]
    assert net.leaky_relu1.negative_slope == net.leaky_relu2.negative_slope == 0.2
    assert sum(p.numel() for p in net.parameters()) == 370848  # the document's Total_params
    assert classifier_net(64, 40).fc1.in_features == 64 and classifier_net(64, 40).fc3.out_features == 40


def test_the_predictor_is_the_documents_512_256_256_512_with_batch_norm_and_no_activation():
    net = predictor_net(512, 512)
    assert _layers(net) == [("fc1", "Linear", 512, 256), ("batch_norm1", "BatchNorm1d", 256, None),
                            ("fc2", "Linear", 256, 256), ("batch_norm2", "BatchNorm1d", 256, None),
                            ("fc3", "Linear", 256, 512)]
    assert sum(p.numel() for p in net.parameters()) == 329728  # the document's Total_params
    assert not any(isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid)) for m in net.modules())
    assert predictor_net(64, 32).fc1.in_features == 64 and predictor_net(64, 32).fc3.out_features == 32


class _Loud(nn.Module):
    """A stand-in partitioned model whose image shows s ten times louder than z, nonlinearly."""

    capabilities = Capabilities(partitioned=True)

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))

    def partition(self):
        return {"s": slice(0, 3), "z": slice(3, 6)}

    def decode(self, latents):
        images = torch.zeros(len(latents), 3, 4, 4)
        images[:, 0] = 10 * torch.tanh(latents[:, :3]).sum(1)[:, None, None]
        images[:, 1] = torch.tanh(latents[:, 3:]).sum(1)[:, None, None]
        return images * self.weight


def test_a_derangement_moves_every_image_and_is_seeded():
    other = derangement(50, seed=3)
    assert sorted(other.tolist()) == list(range(50)) and bool((other != torch.arange(50)).all())
    assert torch.equal(other, derangement(50, seed=3)) and not torch.equal(other, derangement(50, seed=4))


@pytest.mark.parametrize("part", ["z", "s"])
def test_the_normalised_regeneration_error_is_1_for_another_images_part_and_0_for_the_true_one(part):
    model, latents = _Loud(), torch.randn(3000, 6, generator=torch.Generator().manual_seed(0))
    index = model.partition()[part]
    guess = latents.clone()
    guess[:, index] = latents[torch.randperm(3000, generator=torch.Generator().manual_seed(9)), index]
    random_part = regeneration_error(model, latents, guess, part, seed=1)
    assert random_part["regeneration_normalised"] == pytest.approx(1.0, abs=0.08)
    assert random_part["regeneration_normalised_se"] < 0.05
    assert random_part["regeneration_mse"] == pytest.approx(random_part["swap_mse"], rel=0.08)
    perfect = regeneration_error(model, latents, latents.clone(), part, seed=1)
    assert perfect["regeneration_normalised"] == 0.0 and perfect["regeneration_mse"] == 0.0
    # the reference is the swap of the predicted part: z moves the image 100x less than s here, so dividing by
    # the other part's swap would be off by about that factor
    other = "s" if part == "z" else "z"
    wrong = random_part["regeneration_mse"] / regeneration_error(model, latents, guess, other)["swap_mse"]
    assert (wrong < 0.05) if part == "z" else (wrong > 20)


@pytest.mark.slow
def test_a_predictor_that_cannot_beat_the_mean_scores_about_half_a_random_swap():
    """z independent of s: s -> z predicts z's mean, whose image error is half a random z swap's for a decoder
    linear in z; z determined by s: s -> z is near perfect."""

    class Linear(_Loud):
        def decode(self, latents):
            return latents[:, :, None, None] * self.weight  # (N, 6, 1, 1): the latent as the image

    rng = np.random.default_rng(0)
    s = rng.normal(size=(1500, 3))
    independent = predictor_probe(Linear(), np.column_stack([s, rng.normal(size=(1500, 3))]), epochs=20)
    assert 0.4 < independent["s_to_z"]["regeneration_normalised"] < 0.65
    determined = predictor_probe(Linear(), np.column_stack([s, s @ rng.normal(size=(3, 3))]), epochs=20)
    assert determined["s_to_z"]["regeneration_normalised"] < 0.1
    assert set(determined["s_to_z"]) >= {"regeneration_mse", "regeneration_mse_se", "swap_mse", "latent_mse",
                                          "regeneration_normalised", "regeneration_normalised_se"}
