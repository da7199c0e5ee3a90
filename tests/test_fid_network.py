"""The frozen FID feature network (latentds.analysis.feature_network), FID / KID / interval on features
(feature_distance), and the fid probe's default network, KID, interval and real-vs-real floor."""

from __future__ import annotations

import hashlib
import math
import shutil

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from latentds.analysis import feature_network as fn
from latentds.analysis.feature_distance import distances, features, fid_interval, frechet_distance, kid
from latentds.analysis.feature_network_build import load_heldout, r_squared
from latentds.analysis.image_metrics import EncoderFeatures, fid
from latentds.analysis.probes import run
from latentds.errors import InvalidParameterError
from latentds.render import RenderSpec, render_shards
from latentds.zoo.base import WEIGHTS, create

N = 48  # images per set in the quality checks


@pytest.fixture(scope="module")
def network():
    return fn.load_feature_network()


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """A varied 64 px render with a seed neither the network's training (9001) nor its validation (9002) used."""
    out = tmp_path_factory.mktemp("fidnet")
    render_shards(RenderSpec("varied", n=3 * N, size=64, seed=9003, shard_size=3 * N), out, workers=1,
                  progress=False)
    return load_heldout(out)


def quality(model, data) -> dict[str, bool]:
    """The checks a useful FID feature network passes on a small real set (``model``: an e2e_cnn)."""
    net = EncoderFeatures(model)
    images = data["image"]
    real, other = features(images[:N], net), images[N:2 * N]
    floor = frechet_distance(real, features(other, net))
    noise = torch.randn(other.shape, generator=torch.Generator().manual_seed(0))
    noisy = [frechet_distance(real, features((other + s * noise).clamp(-1, 1), net)) for s in (0.1, 0.2, 0.4)]
    blurred = [frechet_distance(real, features(gaussian_blur(other, 2 * math.ceil(3 * s) + 1, s), net))
               for s in (1.0, 2.0)]
    r2 = r_squared(model, {**data, "image": images[:2 * N], "factors": data["factors"][:2 * N],
                           "mask": data["mask"][:2 * N]})
    return {"noise_rises": floor < noisy[0] < noisy[1] < noisy[2],
            "blur_rises": floor < blurred[0] < blurred[1],
            "floor_far_below": 3 * floor < min(noisy[0], blurred[0]),
            "predicts_the_factors": min(r2["n_cuboids"], r2["phi_0"], r2["theta_0"]) > 0.5}


def test_the_packaged_network_loads_by_default_and_by_its_name(network):
    assert fn.available()[0] == fn.DEFAULT == network.name and network.name.startswith("e2e_cnn@")
    again = fn.load_feature_network(fn.DEFAULT)
    assert again.name == fn.DEFAULT and not again.training and not again.model.training
    assert all(torch.equal(a, b) for a, b in zip(network.state_dict().values(), again.state_dict().values()))
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    assert network(x).shape == (3, network.model.config.latent_dim)


def test_its_name_is_the_hash_of_the_committed_weights_and_changed_weights_are_refused(tmp_path, monkeypatch):
    directory = fn.network_directory()
    digest = hashlib.sha256((directory / WEIGHTS).read_bytes()).hexdigest()
    assert fn.DEFAULT == f"e2e_cnn@{digest[:12]}"
    copy = tmp_path / fn.PACKAGED[fn.DEFAULT]
    shutil.copytree(directory, copy)
    data = bytearray((copy / WEIGHTS).read_bytes())
    data[-1] ^= 1  # the last weight's lowest byte
    (copy / WEIGHTS).write_bytes(bytes(data))
    monkeypatch.setattr(fn, "_root", lambda: tmp_path)
    with pytest.raises(InvalidParameterError, match=r"hash to e2e_cnn@[0-9a-f]{12}, not their published name"):
        fn.load_feature_network()


def test_an_unknown_name_is_refused_in_one_line():
    with pytest.raises(InvalidParameterError) as caught:
        fn.load_feature_network("e2e_cnn@000000000000")
    assert "\n" not in str(caught.value) and fn.DEFAULT in str(caught.value)
    assert "'e2e_cnn@000000000000'" in str(caught.value)


@pytest.mark.slow
def test_fid_in_it_rises_with_noise_and_blur_and_a_random_network_fails_the_checks(network, heldout):
    assert quality(network.model, heldout) == dict.fromkeys(
        ("noise_rises", "blur_rises", "floor_far_below", "predicts_the_factors"), True)
    torch.manual_seed(0)
    random = type(network.model)(network.model.config).eval()  # the same shape, untrained
    assert not all(quality(random, heldout).values())


@pytest.mark.slow
def test_fid_of_features_is_torchmetrics_fid_and_both_trace_forms_agree(network, heldout):
    real, fake = heldout["image"][:N], heldout["image"][N:2 * N]
    ours = frechet_distance(features(real, network), features(fake, network))
    assert ours == pytest.approx(fid(real, fake, network)["fid"], rel=1e-6)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(30, 8, generator=g), torch.randn(20, 8, generator=g) * 1.5 + 0.2
    wide_a, wide_b = torch.cat([a, a.roll(1, 0) ** 2], 1), torch.cat([b, b.roll(1, 0) ** 2], 1)  # 16 features
    assert frechet_distance(wide_a[:12], wide_b[:12]) == pytest.approx(_eigen_fid(wide_a[:12], wide_b[:12]), rel=1e-6)
    assert frechet_distance(a, b) == pytest.approx(_eigen_fid(a, b), rel=1e-9)


def _eigen_fid(a, b):
    from torchmetrics.image.fid import _compute_fid

    a, b = a.double(), b.double()
    return float(_compute_fid(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T)))


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kid_follows_torchmetrics_kernel_inception_distance():
    from torchmetrics.image.kid import KernelInceptionDistance

    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(40, 6, generator=g).double(), (torch.randn(30, 6, generator=g) + 0.3).double()
    metric = KernelInceptionDistance(feature=_Identity(), subsets=7, subset_size=20).set_dtype(torch.float64)
    metric.update(a, real=True)
    metric.update(b, real=False)
    torch.manual_seed(5)  # torchmetrics draws its subsets from the global generator; ours from one seeded alike
    mean, std = metric.compute()
    ours = kid(a, b, subsets=7, subset_size=20, seed=5)
    assert ours["kid"] == pytest.approx(float(mean), rel=1e-9)
    assert ours["kid_std"] == pytest.approx(float(std), rel=1e-9)
    assert ours["kid_subset_size"] == 20 and kid(a, b, subset_size=1000)["kid_subset_size"] == 30


class _Identity(torch.nn.Module):
    num_features = 6

    def forward(self, x):
        return x


@pytest.mark.slow
def test_the_fid_interval_is_seeded_and_centred_on_the_estimate():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(200, 5, generator=g), torch.randn(200, 5, generator=g) + 0.5
    lo, hi = fid_interval(a, b, resamples=50)
    assert fid_interval(a, b, resamples=50) == [lo, hi] and fid_interval(a, b, resamples=50, seed=1) != [lo, hi]
    assert lo < frechet_distance(a, b) < hi
    closer = fid_interval(a, b - 0.4, resamples=50)  # mean shift 0.1 instead of 0.5
    assert closer[1] < lo  # the interval moves with the distance


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    render_shards(RenderSpec("varied", n=64, size=16, seed=4, shard_size=32), out, workers=1, progress=False)
    torch.manual_seed(0)
    return out, create("vae", image_size=16, width=8, latent_dim=4).eval()


@pytest.mark.slow
def test_the_fid_probe_reports_the_packaged_network_kid_interval_and_a_disjoint_floor(small_set, tmp_path):
    data, model = small_set
    metrics = run(model, data, tmp_path / "a", probes=["fid"], n=24, progress=False)["fid"]
    assert metrics["feature_network"] == fn.DEFAULT
    for part in ("reconstructions", "samples", "floor"):
        m = metrics[part]
        assert m["feature_network"] == fn.DEFAULT and m["num_features"] == 64 and m["n"] == 24
        assert m["fid_ci"][0] < m["fid"] < m["fid_ci"][1] and math.isfinite(m["kid"])
    assert metrics["floor"]["how"] == "the data's next 24 images, disjoint from the 24 compared"
    # an untrained VAE's samples are far from the data; a second real set is not
    assert metrics["floor"]["fid_ci"][1] < metrics["samples"]["fid_ci"][0]
    assert metrics["floor"]["kid"] < metrics["samples"]["kid"]
    # the floor is FID between the first 24 images and the next 24, in the packaged network at its 64 px
    from latentds import load_shards
    from latentds.analysis.context import resized

    first, second = list(load_shards(data, batch_size=24))[:2]
    net = fn.load_feature_network()
    expected = distances(features(resized(first["image"], 64), net), features(resized(second["image"], 64), net))
    assert metrics["floor"]["fid"] == pytest.approx(expected["fid"], rel=1e-9)
    assert metrics["floor"]["fid_ci"] == pytest.approx(expected["fid_ci"], rel=1e-9)
    again = run(model, data, tmp_path / "b", probes=["fid"], n=24, progress=False)["fid"]
    assert again == metrics  # seeded: the same numbers


@pytest.mark.slow
def test_too_little_data_for_a_disjoint_floor_splits_the_real_set_and_says_so(small_set, tmp_path):
    data, model = small_set
    metrics = run(model, data, tmp_path, probes=["fid"], n=40, progress=False)["fid"]
    assert metrics["samples"]["n"] == 40 and metrics["floor"]["n"] == 20
    assert metrics["floor"]["how"].startswith("the data hold fewer than 80 images: two random halves (20 each")


def test_reference_images_are_the_next_images_of_the_data(small_set, tmp_path):
    from latentds import load_shards
    from latentds.analysis.context import Context
    from latentds.analysis.options import AnalysisOptions

    data, model = small_set
    ctx = Context(model, str(data), tmp_path, AnalysisOptions(n=24))
    every = torch.cat([b["image"] for b in load_shards(data, batch_size=64, partial=True)])
    assert torch.equal(ctx.reference_images(), every[24:48]) and torch.equal(ctx.images(), every[:24])
    tail = Context(model, str(data), tmp_path, AnalysisOptions(n=40))
    assert torch.equal(tail.reference_images(), every[40:])  # the data end first: the 24 left
