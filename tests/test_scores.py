"""Disentanglement scores on latents whose answer is known: copies, noise, permutations, rotations, duplicates.

These behavioural checks run DCI in fast mode (10 boosting rounds) to keep the suite quick; the reference mode (the
default, 100 rounds) is checked against an independent implementation in test_reference_scores.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import sklearn

from latentds.analysis.disentanglement import factor_vae_score
from latentds.analysis.disentanglement import scores as _scores
from latentds.errors import InvalidParameterError


def scores(*args, **kwargs):
    """scores() in fast mode: see the module docstring."""
    return _scores(*args, mode="fast", **kwargs)

N = 2_000
SCORE_KEYS = {"mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap", "settings"}


@pytest.fixture(scope="module")
def factors():
    """(N, 5): three uniform continuous factors, then discrete factors with 3 and 5 values."""
    rng = np.random.default_rng(1)
    return np.column_stack([rng.uniform(-1, 1, (N, 3)), rng.integers(0, 3, N), rng.integers(0, 5, N)])


@pytest.fixture(scope="module")
def standardised(factors):
    """The factors at unit scale, as a VAE's latents would be: SAP's LinearSVC(C=0.01) is scale-sensitive."""
    return (factors - factors.mean(axis=0)) / factors.std(axis=0)


@pytest.fixture(scope="module")
def identity(standardised, factors):
    """Scores of latents equal to the (standardised) factors plus small noise."""
    rng = np.random.default_rng(2)
    latents = standardised + 0.01 * rng.normal(size=standardised.shape)
    return latents, scores(latents, factors)


@pytest.fixture(scope="module")
def noise(factors):
    """Scores of independent Gaussian latents."""
    return scores(np.random.default_rng(3).normal(size=(N, 5)), factors)


@pytest.mark.slow
def test_identity_scores_near_one(identity):
    _, result = identity
    assert set(result) == SCORE_KEYS
    assert all(isinstance(result[key], float) for key in SCORE_KEYS - {"settings"})
    assert result["mig"] > 0.8
    assert result["dci_disentanglement"] > 0.8
    assert result["dci_completeness"] > 0.8
    assert result["dci_informativeness"] > 0.8
    assert result["sap"] > 0.1  # a 1-D linear SVM with C=0.01 separates 20 bins only partly


@pytest.mark.slow
def test_noise_scores_near_zero(noise, factors):
    assert noise["mig"] < 0.05
    assert noise["dci_disentanglement"] < 0.2
    assert noise["sap"] < 0.05
    # chance: always predicting a factor's most frequent class (value, or one of 20 equal-width bins)
    labels = [column if discrete else np.digitize(column, np.histogram(column, 20)[1][:-1])
              for column, discrete in zip(factors.T, noise["settings"]["discrete_factors"], strict=True)]
    chance = np.mean([np.unique(label, return_counts=True)[1].max() / N for label in labels])
    assert abs(noise["dci_informativeness"] - chance) < 0.05


@pytest.mark.slow
def test_permuted_latents_score_as_the_identity(identity, factors):
    latents, reference = identity
    result = scores(latents[:, [3, 0, 4, 2, 1]], factors)
    assert result["mig"] == pytest.approx(reference["mig"], abs=1e-9)  # MI does not depend on column order
    for key in ("dci_disentanglement", "dci_completeness", "dci_informativeness", "sap"):
        assert result[key] == pytest.approx(reference[key], abs=0.03), key


@pytest.mark.slow
def test_rotated_latents_score_in_between(identity, noise, standardised, factors):
    skew = np.random.default_rng(4).normal(size=(5, 5))
    rotation = scipy.linalg.expm(0.3 * (skew - skew.T))  # a random orthogonal matrix that mixes every column
    assert np.allclose(rotation @ rotation.T, np.eye(5))
    result = scores(standardised @ rotation, factors)
    for key in ("mig", "dci_disentanglement"):
        assert noise[key] + 0.1 < result[key] < identity[1][key] - 0.2, key


@pytest.mark.slow
def test_duplicated_latents_lower_completeness_and_mig(identity, standardised, factors):
    rng = np.random.default_rng(5)
    latents = np.hstack([standardised, standardised]) + 0.01 * rng.normal(size=(N, 10))
    result = scores(latents, factors)
    reference = identity[1]
    assert result["dci_completeness"] < reference["dci_completeness"] - 0.15
    assert result["mig"] < 0.1  # two latents share every factor: the gap between the top two MIs vanishes
    assert result["dci_informativeness"] == pytest.approx(reference["dci_informativeness"], abs=0.05)


@pytest.mark.slow
def test_settings_record_the_estimators(identity):
    settings = identity[1]["settings"]
    assert settings["n_bins"] == 20
    assert settings["sklearn_version"] == sklearn.__version__
    assert settings["discrete_factors"] == [False, False, False, True, True]
    assert settings["n_samples"] == N
    assert (settings["n_train"], settings["n_test"]) == (1_600, 400)
    assert settings["skipped_factors"] == []
    assert settings["dci"]["n_estimators"] == 10 and settings["mode"] == "fast"
    assert settings["versions"]["scikit-learn"] == sklearn.__version__


def test_exact_copy_of_a_discrete_factor_has_mig_one():
    factor = np.random.default_rng(6).integers(0, 4, 200).astype(float)
    result = scores(np.column_stack([factor, np.zeros(200)]), factor[:, None])
    assert result["mig"] == pytest.approx(1.0)
    assert result["dci_completeness"] > 0.99
    assert result["dci_informativeness"] == pytest.approx(1.0)


def test_constant_factor_is_skipped_and_recorded():
    rng = np.random.default_rng(7)
    factor = rng.integers(0, 3, 200).astype(float)
    result = scores(np.column_stack([factor, rng.normal(size=200)]), np.column_stack([factor, np.ones(200)]))
    assert result["settings"]["skipped_factors"] == [1]
    assert result["mig"] > 0.8  # not 1: the plug-in MI of the noise latent is biased upwards on 200 points


@pytest.mark.slow
def test_discrete_override_decides_how_a_factor_is_binned():
    factor = np.random.default_rng(8).integers(0, 30, 300).astype(float)
    latents = np.column_stack([factor, np.zeros(300)])
    as_bins = scores(latents, factor[:, None])  # 30 values: continuous by default, binned like the latent
    as_values = scores(latents, factor[:, None], discrete=[True])  # 30 classes against the latent's 20 bins
    assert as_bins["settings"]["discrete_factors"] == [False]
    assert as_values["settings"]["discrete_factors"] == [True]
    assert as_bins["mig"] == pytest.approx(1.0)
    assert as_values["mig"] < 0.95


@pytest.mark.parametrize("latents, factors, kwargs, message", [
    (np.zeros((100, 3)), np.zeros((90, 2)), {}, "rows"),
    (np.zeros((5, 3)), np.zeros((5, 2)), {}, "at least"),
    (np.full((100, 3), np.nan), np.zeros((100, 2)), {}, "NaN"),
    (np.zeros((100, 3)), np.r_[np.zeros((99, 2)), [[np.nan, 0]]], {}, "NaN"),
    (np.zeros(100), np.zeros((100, 2)), {}, "2-D"),
    (np.zeros((100, 3)), np.zeros((100, 2)), {"discrete": [True]}, "discrete"),
    (np.zeros((100, 3)), np.zeros((100, 2)), {"n_bins": 1}, "n_bins"),
    (np.zeros((100, 3)), np.zeros((100, 2)), {"train_fraction": 1.0}, "train_fraction"),
    (np.zeros((100, 3)), np.zeros((100, 2)), {}, "constant"),
])
def test_bad_input_raises(latents, factors, kwargs, message):
    with pytest.raises(InvalidParameterError, match=message) as error:
        scores(latents, factors, **kwargs)
    assert "\n" not in str(error.value)


# FactorVAE score on a synthetic generator: "images" are the factor vectors themselves.
K = 5


def sample_fixed(factor_index, batch_size, rng):
    images = rng.uniform(size=(batch_size, K))
    images[:, factor_index] = images[0, factor_index]
    return images


def sample_random(n, rng):
    return rng.uniform(size=(n, K))


def test_factor_vae_identity_encoder_scores_one():
    rng = np.random.default_rng(9)

    def encode(images):  # noisy copy of the factors, shuffled, after a collapsed dimension
        return np.column_stack([np.zeros(len(images)), images[:, ::-1] + 0.01 * rng.normal(size=images.shape)])

    result = factor_vae_score(encode, sample_fixed, K, sample_random=sample_random, n_train=300, n_eval=300,
                              n_variance=1_000)
    assert result["factor_vae_eval_accuracy"] > 0.9
    assert result["factor_vae_train_accuracy"] > 0.9
    assert result["num_active_dims"] == K  # the collapsed dimension is pruned
    assert result["settings"]["active_dims"] == [1, 2, 3, 4, 5]


def test_factor_vae_random_encoder_is_at_chance():
    rng = np.random.default_rng(10)
    result = factor_vae_score(lambda images: rng.normal(size=(len(images), K)), sample_fixed, K,
                              sample_random=sample_random, n_train=500, n_eval=500, n_variance=1_000)
    assert abs(result["factor_vae_eval_accuracy"] - 1 / K) < 0.1
    assert result["num_active_dims"] == K


def test_factor_vae_bad_count_raises():
    with pytest.raises(InvalidParameterError, match="n_factors"):
        factor_vae_score(lambda x: x, sample_fixed, 0, sample_random=sample_random)


def test_factor_vae_records_its_vote_counts_and_standard_error():
    rng = np.random.default_rng(10)
    result = factor_vae_score(lambda images: rng.normal(size=(len(images), K)), sample_fixed, K,
                              sample_random=sample_random, n_train=200, n_eval=100, n_variance=500)
    p = result["factor_vae_eval_accuracy"]
    assert result["factor_vae_eval_accuracy_se"] == pytest.approx(np.sqrt(p * (1 - p) / 100))
    assert 0.02 < result["factor_vae_eval_accuracy_se"] < 0.05  # p near 1/5 on 100 votes
    settings = result["settings"]
    assert (settings["n_train"], settings["n_eval"], settings["n_variance"]) == (200, 100, 500)
    assert settings["reference_counts"]["n_eval"] == 5_000 and "versions" in settings


# The cuboid FactorVAE probe, with a stand-in renderer that writes the factor values into the pixels.
class _FactorPixels:
    """A renderer whose image shows each scalar factor of a sample as the brightness of one pixel."""

    def __init__(self, names):
        self.names, self.seen = names, []

    def render(self, labels):
        from latentds.render.factors import FACTORS_BY_NAME, factor_value

        self.seen.append(labels)
        rgb = np.zeros((4, 4, 3), dtype=np.uint8)
        for k, name in enumerate(self.names):
            f, value = FACTORS_BY_NAME[name], factor_value(labels, name)
            if value is not None:  # a joint the chain lacks shows as black
                rgb.reshape(-1, 3)[k] = round(255 * (value - f.low) / (f.high - f.low))
        return {"rgb": rgb}


class _PixelEncoder:
    """A "model" whose code is the pixels that carry the factors: a perfectly disentangled encoder."""

    def __init__(self, k):
        import torch

        self.k, self.weight = k, torch.nn.Parameter(torch.zeros(1))
        self.config = type("Config", (), {"image_size": 4})()

    def parameters(self):
        return iter([self.weight])

    def eval(self):
        return self

    def encode(self, images):
        return images[:, 0].flatten(1)[:, : self.k]


@pytest.mark.slow
def test_cuboid_factor_vae_records_votes_and_fixes_missing_joints_from_the_preset(monkeypatch):
    import latentds.render.renderer
    from latentds.analysis.factorvae_cuboids import VOTES, cuboid_factor_vae

    names = ["phi_0", "phi_2", "light_azimuth"]  # phi_2: most samples lack joint 2, so fixing it lengthens them
    renderer = _FactorPixels(names)
    monkeypatch.setattr(latentds.render.renderer, "process_renderer", lambda size, cuboid: renderer)
    result = cuboid_factor_vae(_PixelEncoder(len(names)), factors=names, batch_size=16, n_train=60, n_eval=40,
                               n_variance=200)
    assert result["factors"] == names and result["factor_vae_eval_accuracy"] > 0.9
    lengthened = [labels for labels in renderer.seen if labels["n_cuboids"] == 4]
    assert len(lengthened) > 100  # every phi_2 batch, and the 4-cuboid draws
    # the joints a lengthened chain gains carry the preset's draws (the old code set them to 0 degrees)
    assert all(angle != 0.0 for labels in lengthened for joint in labels["joints"] for angle in joint.values())
    p = result["factor_vae_eval_accuracy"]
    assert result["factor_vae_eval_accuracy_se"] == pytest.approx(np.sqrt(p * (1 - p) / 40))
    assert result["settings"]["votes"] == "quick (counts overridden)" and result["settings"]["n_eval"] == 40
    assert VOTES["reference"] == (10_000, 5_000, 10_000) and VOTES["quick"][:2] == (100, 50)
    with pytest.raises(InvalidParameterError, match="votes"):
        cuboid_factor_vae(_PixelEncoder(3), factors=names, votes="many")
