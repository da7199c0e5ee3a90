"""Metrics between real images and reconstructions or samples; every image tensor is (N, 3, H, W) in [-1, 1].

    reconstruction_metrics(real, recon)   # per-image MSE, Pearson correlation and SSIM, with their means
    fid(real, fake, EncoderFeatures(model))   # FID in the features of a named network

SSIM follows the reference convention (Wang et al. 2004 and scikit-image's ``structural_similarity`` with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``): the SSIM map is averaged over the interior only,
where the 11 x 11 window fits, and the result names its convention (SSIM_CONVENTION). It is computed here rather
than with torchmetrics, whose SSIM since 2024 averages over the reflect-padded border as well (up to ~0.04 higher or
lower on 64 px images), so that the number does not depend on the torchmetrics version.

FID always reports which network produced the features: a number is labelled Inception FID only when the
torch-fidelity Inception weights were really used.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn
from torchmetrics.functional.regression import pearson_corrcoef
from torchmetrics.image.fid import FrechetInceptionDistance

from latentds.errors import InvalidParameterError

INCEPTION_NAME = "inception-v3 (torch-fidelity FID weights)"
# The file torch-fidelity downloads into torch.hub's checkpoint directory.
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
SSIM_DATA_RANGE = 2.0  # max - min of [-1, 1] images
SSIM_SIGMA = 1.5  # Wang et al. 2004
SSIM_WINDOW = 11  # 2 * int(3.5 * sigma + 0.5) + 1: scikit-image's truncation (scipy gaussian_filter, 3.5 sigma)
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_CONVENTION = ("Wang et al. 2004 / scikit-image structural_similarity(gaussian_weights=True, sigma=1.5, "
                   "use_sample_covariance=False, data_range=2): 11x11 gaussian window, K1=0.01, K2=0.03, mean over "
                   "the interior only (5 px border excluded), per channel then averaged")


# --- reconstruction metrics -------------------------------------------------------------------------------------
def reconstruction_metrics(real: torch.Tensor, recon: torch.Tensor) -> dict[str, dict]:
    """Per-image MSE, Pearson correlation and SSIM between ``real`` and ``recon`` (same shape, values in [-1, 1]).

    Returns ``{"mse" | "pcc" | "ssim": {"per_image": [N floats], "mean": float, "n_undefined": int}}``; the
    "ssim" entry also names its ``"convention"`` (SSIM_CONVENTION: the reference one, see per_image_ssim).
    The correlation is undefined (NaN) for an image where either side is constant; ``mean`` is taken over the
    defined values (NaN when there are none) and ``n_undefined`` counts the NaNs.
    """
    _check_images(real, "real")
    _check_images(recon, "recon")
    if real.shape != recon.shape:
        raise InvalidParameterError(f"real and recon must have the same shape, got {tuple(real.shape)} "
                                    f"and {tuple(recon.shape)}")
    real, recon = real.detach().double(), recon.detach().double()
    values = {"mse": per_image_mse(real, recon), "pcc": per_image_pcc(real, recon),
              "ssim": per_image_ssim(real, recon)}
    result = {name: _summary(v) for name, v in values.items()}
    result["ssim"]["convention"] = SSIM_CONVENTION
    return result


def per_image_mse(real: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """(N,) mean squared error per image, on the [-1, 1] values."""
    return (real - recon).pow(2).flatten(1).mean(1)


def per_image_pcc(real: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """(N,) Pearson correlation per image between its flattened pixels; NaN where either image is constant."""
    x, y = real.flatten(1), recon.flatten(1)
    with warnings.catch_warnings():
        # torchmetrics warns about near-zero variance; such images come back as NaN, which is the report
        warnings.filterwarnings("ignore", message="The variance of predictions or target is close to zero")
        pcc = pearson_corrcoef(x.T, y.T).reshape(-1)  # (pixels, N): observations along dim 0, one output per image
    # torchmetrics rescales by the largest deviation before its zero-variance test, so rounding noise in a
    # constant image can pass as a real correlation: mark constant images ourselves
    constant = (x.amax(1) == x.amin(1)) | (y.amax(1) == y.amin(1))
    return pcc.masked_fill(constant, math.nan)


def per_image_ssim(real: torch.Tensor, recon: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) SSIM per image in the reference convention (SSIM_CONVENTION), data range 2 for [-1, 1] images.
    With ``mask`` ((N, 1, H, W) bool, e.g. a render's foreground), the SSIM map is averaged over the masked pixels
    of the valid region only (NaN for an image with none there).

    As scikit-image's ``structural_similarity(real, recon, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=2, channel_axis=0)``: local means, variances and covariance under a
    normalised 11 x 11 Gaussian window (sigma 1.5), the SSIM map over the valid region only (the window never
    leaves the image: a 5 px border is excluded), averaged per channel and then over channels. Images must be at
    least 11 px on each side. Computed in float32: float64 convolution on the CPU is many times slower, and the
    result agrees with scikit-image's float64 to about 1e-6.
    """
    if min(real.shape[-2:]) < SSIM_WINDOW:
        raise InvalidParameterError(f"SSIM needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} px (its window), "
                                    f"got {tuple(real.shape[-2:])}")
    # Centred on each image-channel's mean (SSIM's variances do not move with a common shift; the means are shifted
    # back below), which keeps float32's cancellation in E[x^2] - E[x]^2 small.
    centre = (real.mean((2, 3), keepdim=True) + recon.mean((2, 3), keepdim=True)) / 2
    x, y = (real - centre).float(), (recon - centre).float()
    n, c, h, w = x.shape
    window = _gaussian_window(x.device)
    kernel = (window[:, None] * window[None, :]).expand(c, 1, SSIM_WINDOW, SSIM_WINDOW)  # one 2-D window per channel
    maps = torch.cat([x, y, x * x, y * y, x * y])  # (5N, C, H, W)
    filtered = torch.nn.functional.conv2d(maps, kernel, groups=c)  # no padding: the valid region only
    mu_x, mu_y, xx, yy, xy = filtered.reshape(5, n, c, h - SSIM_WINDOW + 1, w - SSIM_WINDOW + 1)
    var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    shift = centre.float().reshape(n, c, 1, 1)
    mu_x, mu_y = mu_x + shift, mu_y + shift
    c1, c2 = (SSIM_K1 * SSIM_DATA_RANGE) ** 2, (SSIM_K2 * SSIM_DATA_RANGE) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    if mask is None:
        return ssim_map.flatten(2).mean(2).mean(1).to(real.dtype)  # per channel, then over channels
    half = SSIM_WINDOW // 2
    inside = mask[:, :, half:h - half, half:w - half].float()
    per_channel = (ssim_map * inside).flatten(2).sum(2) / inside.flatten(2).sum(2)  # NaN (0/0) where empty
    return per_channel.mean(1).to(real.dtype)


def _gaussian_window(device) -> torch.Tensor:
    """The normalised 1-D Gaussian (SSIM_WINDOW taps, sigma SSIM_SIGMA) of scipy.ndimage.gaussian_filter."""
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    weights = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    return (weights / weights.sum()).float().to(device)


def _summary(values: torch.Tensor) -> dict:
    undefined = int(values.isnan().sum())
    return {"per_image": [float(v) for v in values], "mean": float(values.nanmean()), "n_undefined": undefined}


# --- FID -----------------------------------------------------------------------------------------------------
class EncoderFeatures(nn.Module):
    """A latentds zoo model (anything with ``encode(x) -> (N, d)``) as an FID feature network.

    Images (N, 3, H, W) in [-1, 1] -> latent codes (N, d). ``name`` says which model it is, for reports.
    """

    def __init__(self, model: nn.Module, name: str | None = None):
        super().__init__()
        if not callable(getattr(model, "encode", None)):
            raise InvalidParameterError(f"{type(model).__name__} has no encode(x) method to use as FID features")
        self.model = model
        self.name = name or _encoder_name(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x).flatten(1)


def _encoder_name(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    family = getattr(model, "family", "") or type(model).__name__
    latent = getattr(config, "latent_dim", None)
    return f"latentds {family} encoder" + (f" (latent {latent})" if latent else "")


def fid(real: torch.Tensor, fake: torch.Tensor, feature: str | nn.Module | Callable = "inception", *,
        num_features: int | None = None, name: str | None = None, inception_weights: str | Path | None = None,
        batch_size: int = 64) -> dict:
    """Fréchet distance between the feature distributions of ``real`` and ``fake`` images ((N, 3, H, W), [-1, 1]).

    ``feature`` is ``"inception"`` (torch-fidelity's Inception v3; needs its weights on local disk, from
    ``inception_weights`` or torch.hub's cache) or a network mapping [-1, 1] images to (N, d) features: an
    ``nn.Module`` or a callable such as ``model.encode``. ``num_features`` is d (found by one forward pass when
    not given); ``name`` labels the network in the result (default: its ``name`` attribute or class name).

    Returns ``{"fid": float, "feature_network": str, "num_features": int, "n_real": int, "n_fake": int}``.
    """
    _check_images(real, "real", at_least=2)
    _check_images(fake, "fake", at_least=2)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidParameterError(f"batch_size must be a positive integer, got {batch_size!r}")
    if num_features is not None and (not isinstance(num_features, int) or num_features < 1):
        raise InvalidParameterError(f"num_features must be a positive integer, got {num_features!r}")
    if isinstance(feature, str):
        if feature != "inception":
            raise InvalidParameterError(f"feature must be 'inception' or a feature network, got {feature!r}")
        metric = _inception_metric(inception_weights)
        return _compute(metric, real, fake, _to_uint8, batch_size, INCEPTION_NAME)
    if not callable(feature):
        raise InvalidParameterError(f"feature must be 'inception' or a feature network, got {type(feature).__name__}")
    network = feature if isinstance(feature, nn.Module) else _CallableFeatures(feature)
    with _eval_mode(network):
        features = _Features(network, num_features or _count_features(network, real[:1]))
        metric = FrechetInceptionDistance(feature=features)
        return _compute(metric, real, fake, _identity, batch_size, name or _network_name(feature))


def _compute(metric: FrechetInceptionDistance, real: torch.Tensor, fake: torch.Tensor,
             prepare: Callable[[torch.Tensor], torch.Tensor], batch_size: int, label: str) -> dict:
    """Feed both image sets through ``metric`` in batches and package the result."""
    metric = metric.set_dtype(torch.float64).to(real.device)
    with torch.no_grad():
        for is_real, images in ((True, real), (False, fake)):
            for batch in _batches(images.detach(), batch_size):
                metric.update(prepare(batch), real=is_real)
        value = metric.compute()
    return {"fid": float(value), "feature_network": label, "num_features": int(metric.real_features_sum.numel()),
            "n_real": len(real), "n_fake": len(fake)}


class _Features(nn.Module):
    """What torchmetrics sees: [-1, 1] images in, float64 (N, d) features out.

    With a custom module torchmetrics passes images through unchanged (``normalize`` only rescales for its own
    Inception), reads ``num_features`` instead of probing with a uint8 299 px image, and ``set_dtype`` casts
    every registered submodule. The network is therefore kept unregistered, so the caller's weights stay in
    their dtype; the features are cast to float64 here, so the statistics and the result are float64.
    """

    def __init__(self, network: nn.Module, num_features: int):
        super().__init__()
        object.__setattr__(self, "network", network)  # bypasses nn.Module registration on purpose (see above)
        self.num_features = num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.network(_match(images, self.network)).reshape(len(images), -1)
        if features.shape[1] != self.num_features:
            raise InvalidParameterError(f"the feature network returned {features.shape[1]} features per image, "
                                        f"not num_features={self.num_features}")
        return features.to(device=images.device, dtype=torch.float64)


class _CallableFeatures(nn.Module):
    """A plain callable (e.g. ``model.encode``) as a module."""

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.function = function
        if isinstance(getattr(function, "__self__", None), nn.Module):
            self.owner = function.__self__  # a bound method: register its module so eval() and dtype reach it

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.function(images)


def _network_name(feature: nn.Module | Callable) -> str:
    own = getattr(feature, "name", None)
    if isinstance(own, str) and own:
        return own
    if isinstance(feature, nn.Module):
        return type(feature).__name__
    return getattr(feature, "__qualname__", type(feature).__name__)


def _count_features(network: nn.Module, probe: torch.Tensor) -> int:
    """d, from one forward pass on ``probe`` (1, 3, H, W)."""
    with torch.no_grad():
        return network(_match(probe, network)).reshape(len(probe), -1).shape[1]


def _match(images: torch.Tensor, network: nn.Module) -> torch.Tensor:
    """``images`` on the device and in the dtype of ``network``'s parameters (unchanged if it has none)."""
    parameter = next(network.parameters(), None)
    return images if parameter is None else images.to(device=parameter.device, dtype=parameter.dtype)


@contextlib.contextmanager
def _eval_mode(network: nn.Module) -> Iterator[None]:
    """Evaluation mode (no dropout, frozen batch norm) for the duration, then the caller's modes back."""
    modes = {m: m.training for m in network.modules()}
    network.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


def _inception_metric(weights: str | Path | None) -> FrechetInceptionDistance:
    """torchmetrics' Inception FID, only from weights on local disk (never a download)."""
    path = _inception_weights_path(weights)
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        raise InvalidParameterError("Inception FID needs torch-fidelity, which is not installed: pass a feature "
                                    "network instead (e.g. feature=EncoderFeatures(zoo_model))") from None
    return FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(path))


def _inception_weights_path(weights: str | Path | None) -> Path:
    if weights is not None:
        if not Path(weights).is_file():
            raise InvalidParameterError(f"Inception weights file {weights} does not exist: pass an existing "
                                        "inception_weights=PATH or a feature network (e.g. a zoo encoder)")
        return Path(weights)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE
    if cached.is_file():
        return cached
    raise InvalidParameterError("Inception weights are not available locally: pass inception_weights=PATH or a "
                                "feature network (e.g. feature=EncoderFeatures(zoo_model))")


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> [0, 255] uint8, rounded (torchmetrics' own normalize=True truncates)."""
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _identity(images: torch.Tensor) -> torch.Tensor:
    return images


def _batches(images: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


def _check_images(images: torch.Tensor, what: str, at_least: int = 1) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InvalidParameterError(f"{what} must be an image tensor (N, 3, H, W), got {shape}")
    if len(images) < at_least:
        raise InvalidParameterError(f"{what} needs at least {at_least} images, got {len(images)}")
