"""Image metrics: per-image MSE / Pearson / SSIM, and FID with a named feature network."""

import math
import sys

import numpy as np
import pytest
import scipy.ndimage
import torch
from torch import nn

from latentds.analysis.image_metrics import (SSIM_CONVENTION, EncoderFeatures, fid, per_image_ssim,
                                             reconstruction_metrics)
from latentds.errors import InvalidParameterError


def images(n=12, size=16, seed=0):
    """Random images in [-1, 1], blurred so that SSIM has local structure to compare."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    return (nn.functional.avg_pool2d(x, 3, stride=1, padding=1) * 2).clamp(-1, 1)


def noisy(x, level, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (x + level * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def probe_network(seed=0):
    """A fixed random conv + global pooling: (N, 3, H, W) -> (N, 8)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


# --- reconstruction metrics -------------------------------------------------------------------------------------
def test_identical_images_are_perfect():
    x = images()
    m = reconstruction_metrics(x, x.clone())
    assert m["mse"]["mean"] == 0.0
    assert m["ssim"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert m["pcc"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert all(len(m[k]["per_image"]) == len(x) for k in ("mse", "pcc", "ssim"))
    assert all(m[k]["n_undefined"] == 0 for k in ("mse", "pcc", "ssim"))


def test_more_noise_is_worse_on_every_metric_and_per_image():
    x = images()
    slight, heavy = reconstruction_metrics(x, noisy(x, 0.05)), reconstruction_metrics(x, noisy(x, 0.4))
    assert 0 < slight["mse"]["mean"] < heavy["mse"]["mean"]
    assert 1 > slight["ssim"]["mean"] > heavy["ssim"]["mean"]
    assert 1 > slight["pcc"]["mean"] > heavy["pcc"]["mean"]
    for i in range(len(x)):  # per image, too: the lists line up with the images
        assert slight["mse"]["per_image"][i] < heavy["mse"]["per_image"][i]
        assert slight["ssim"]["per_image"][i] > heavy["ssim"]["per_image"][i]
        assert slight["pcc"]["per_image"][i] > heavy["pcc"]["per_image"][i]
    expected = (x - noisy(x, 0.4)).pow(2).flatten(1).mean(1)
    assert heavy["mse"]["per_image"] == pytest.approx(expected.tolist(), rel=1e-5)


# In float64, the mean of a constant 0.3 image is off by rounding, and torchmetrics turns that noise into a
# finite "correlation" (about 1e-17) instead of NaN.
@pytest.mark.parametrize("value, dtype", [(0.0, torch.float32), (0.3, torch.float64)])
def test_a_constant_image_has_an_undefined_correlation(value, dtype):
    x = images(n=4).to(dtype)
    recon = noisy(x, 0.1)
    recon[1] = value
    m = reconstruction_metrics(x, recon)
    assert math.isnan(m["pcc"]["per_image"][1])
    assert all(not math.isnan(v) for i, v in enumerate(m["pcc"]["per_image"]) if i != 1)
    assert m["pcc"]["n_undefined"] == 1
    assert m["pcc"]["mean"] == pytest.approx(sum(m["pcc"]["per_image"][i] for i in (0, 2, 3)) / 3)
    assert not math.isnan(m["ssim"]["per_image"][1]) and m["mse"]["per_image"][1] > 0


def test_per_image_values_do_not_depend_on_the_other_images_in_the_batch():
    # SSIM's data range is fixed at 2 for [-1, 1]; one inferred from the data would change with the batch
    dim = images(n=3) * 0.2
    vivid = images(n=1, seed=7).sign()
    alone = reconstruction_metrics(dim, noisy(dim, 0.05))
    together = reconstruction_metrics(torch.cat([dim, vivid]), torch.cat([noisy(dim, 0.05), vivid]))
    for key in ("mse", "pcc", "ssim"):
        assert together[key]["per_image"][:3] == pytest.approx(alone[key]["per_image"], rel=1e-9)


def test_reconstruction_metrics_reject_mismatched_shapes():
    with pytest.raises(InvalidParameterError, match="same shape"):
        reconstruction_metrics(images(n=4), images(n=5))


# --- SSIM in the reference convention (Wang et al. 2004, scikit-image) -------------------------------------------
def reference_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> float:
    """SSIM of two (C, H, W) float64 images as Wang et al. 2004 and scikit-image compute it: Gaussian window of
    sigma 1.5 truncated at 3.5 sigma (11 taps), population covariances, the map averaged over the interior (a
    5 px border left out), per channel, then over channels."""
    def blur(x):
        return scipy.ndimage.gaussian_filter(x, sigma=1.5, truncate=3.5)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    per_channel = []
    for x, y in zip(a, b, strict=True):
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        ssim_map = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        per_channel.append(ssim_map[5:-5, 5:-5].mean())
    return float(np.mean(per_channel))


def ssim_pairs(size=64):
    """(real, recon) pairs of [-1, 1] RGB images: white noise, blurred noise and a structured scene, each with
    slight and heavy noise on the reconstruction."""
    g = torch.Generator().manual_seed(3)
    noise = torch.rand(4, 3, size, size, generator=g) * 2 - 1
    blurred = (nn.functional.avg_pool2d(noise, 5, stride=1, padding=2) * 2).clamp(-1, 1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    scene = torch.stack([xx, yy, xx * yy])[None].repeat(4, 1, 1, 1)
    scene[:, :, : size // 5, : size // 5] = 1.0  # a bright block reaching into the border
    scene[:, 1, size // 2:, :] = -0.8
    for real in (noise, blurred, scene):
        for level in (0.05, 0.4):
            yield real, (real + level * torch.randn(real.shape, generator=g)).clamp(-1, 1)


@pytest.mark.slow
def test_ssim_matches_the_reference_convention():
    for real, recon in ssim_pairs():
        expected = [reference_ssim(r.double().numpy(), c.double().numpy()) for r, c in zip(real, recon, strict=True)]
        assert per_image_ssim(real, recon).tolist() == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    for real, recon in ssim_pairs():
        expected = [metrics.structural_similarity(r.double().numpy(), c.double().numpy(), gaussian_weights=True,
                                                  sigma=1.5, use_sample_covariance=False, data_range=2.0,
                                                  channel_axis=0) for r, c in zip(real, recon, strict=True)]
        assert per_image_ssim(real, recon).tolist() == pytest.approx(expected, abs=1e-4)


def test_ssim_names_its_convention_and_needs_its_window():
    m = reconstruction_metrics(images(), noisy(images(), 0.1))
    assert m["ssim"]["convention"] == SSIM_CONVENTION and "interior" in SSIM_CONVENTION
    with pytest.raises(InvalidParameterError, match="at least 11"):
        reconstruction_metrics(images(size=10), images(size=10))


# --- FID with a named feature network ---------------------------------------------------------------------------
def test_fid_is_zero_for_identical_sets_and_grows_with_the_shift():
    x, net = images(n=40), probe_network()
    same = fid(x, x.clone(), net)
    slightly, shifted = fid(x, (x + 0.05).clamp(-1, 1), net), fid(x, (x + 0.5).clamp(-1, 1), net)
    assert shifted["fid"] > slightly["fid"] > 0
    assert abs(same["fid"]) < 1e-6 * shifted["fid"]
    assert shifted == {"fid": shifted["fid"], "feature_network": "Sequential", "num_features": 8,
                       "n_real": 40, "n_fake": 40}


def test_fid_batches_give_the_same_value_and_names_are_passed_through():
    x, y, net = images(n=20), images(n=15, seed=5), probe_network()
    whole = fid(x, y, net, name="random conv probe")
    batched = fid(x, y, net, batch_size=3, num_features=8, name="random conv probe")
    assert batched["fid"] == pytest.approx(whole["fid"], rel=1e-9)
    assert whole["feature_network"] == "random conv probe" and (whole["n_real"], whole["n_fake"]) == (20, 15)


def test_fid_leaves_the_callers_network_as_it_was():
    net = probe_network().train()
    fid(images(n=4), images(n=4, seed=3), net)
    assert all(p.dtype == torch.float32 for p in net.parameters())  # torchmetrics' set_dtype would cast them
    assert net.training


def test_fid_rejects_a_wrong_num_features():
    with pytest.raises(InvalidParameterError, match="num_features=5"):
        fid(images(n=4), images(n=4, seed=3), probe_network(), num_features=5)


@pytest.mark.parametrize("n_real, n_fake", [(1, 4), (4, 1)])
def test_fid_needs_two_images_per_side(n_real, n_fake):
    with pytest.raises(InvalidParameterError, match="at least 2 images"):
        fid(images(n=n_real), images(n=n_fake), probe_network())


def test_inception_without_local_weights_refuses_and_points_to_a_feature_network(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache, whatever this machine has
    with pytest.raises(InvalidParameterError, match="feature network") as error:
        fid(images(n=4), images(n=4, seed=3))
    assert "inception_weights=PATH" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(InvalidParameterError, match="does not exist"):
        fid(images(n=4), images(n=4, seed=3), inception_weights=tmp_path / "missing.pth")


def test_inception_without_torch_fidelity_refuses_even_with_weights(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as if not installed, whatever this machine has
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"")
    with pytest.raises(InvalidParameterError, match="torch-fidelity.*feature network"):
        fid(images(n=4), images(n=4, seed=3), "inception", inception_weights=weights)


def test_encoder_features_of_a_zoo_vae_are_a_named_feature_network():
    from latentds.zoo import create

    torch.manual_seed(0)
    model = create("vae", image_size=16, width=8, latent_dim=4)
    x = images(n=24)
    features = EncoderFeatures(model)
    same, shifted = fid(x, x.clone(), features), fid(x, (x + 0.5).clamp(-1, 1), features)
    assert shifted["feature_network"] == "latentds vae encoder (latent 4)" and shifted["num_features"] == 4
    assert shifted["fid"] > 0 and abs(same["fid"]) < 1e-6 * shifted["fid"]
    assert fid(x, (x + 0.5).clamp(-1, 1), model.encode)["fid"] == pytest.approx(shifted["fid"], rel=1e-9)
    assert all(p.dtype == torch.float32 for p in model.parameters())
