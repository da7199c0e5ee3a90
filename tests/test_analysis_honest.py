"""What the analysis says must be trustworthy: constant factors left out (float32 constants included), strict
JSON, library warnings kept off the terminal, and reconstructions judged against trivial baselines."""

import json
import warnings

import numpy as np
import pytest
import torch

from latentds.analysis import strict_json
from latentds.analysis.baselines import sentence, verdict
from latentds.analysis.encode import Codes
from latentds.analysis.health import image_baselines
from latentds.analysis.labels import constant_factors, is_constant, varying_factors
from latentds.analysis.library_warnings import library_warnings


def _codes(n=500):
    rng = np.random.default_rng(0)
    phi = rng.uniform(-135, 135, n)
    # a colour stored as float32 whose float32 std is not 0 (the --phi preset's colours)
    colour = np.full(n, 0.9, np.float32) + np.float32(1e-7) * (rng.random(n) < 0.5)
    intensity = np.full(n, 3.0) + 1e-9 * rng.standard_normal(n)  # near-constant
    factors = np.stack([phi, colour, intensity, np.full(n, 2.0)], axis=1).astype(np.float32)
    return Codes(latents=rng.standard_normal((n, 4)).astype(np.float32), factors=factors,
                 factor_mask=np.ones_like(factors, bool), labels=[{}] * n, keys=[str(i) for i in range(n)],
                 source={}, factor_names=["phi_0", "color_0_r", "light_intensity", "n_cuboids"])


def test_float32_constants_are_constant_and_left_out():
    codes = _codes()
    assert codes.factors[:, 1].std() > 0  # the float32 trap: not exactly constant
    assert is_constant(codes.factors[:, 1]) and is_constant(codes.factors[:, 2]) and not is_constant(codes.factors[:, 0])
    assert constant_factors(codes) == ["color_0_r", "light_intensity", "n_cuboids"]
    factors, names = varying_factors(codes)
    assert names == ["phi_0"] and factors.shape == (500, 1)


def test_metrics_json_is_strict_with_a_note():
    text = strict_json.dumps({"a": {"r": float("nan"), "ok": 1.5}, "b": [np.float32("inf"), 2], "skipped": {}})
    def refuse(constant):
        raise AssertionError(f"{constant} in metrics.json")

    parsed = json.loads(text, parse_constant=refuse)  # as JSON.parse: no NaN / Infinity
    json.dumps(parsed, allow_nan=False)
    assert parsed["a"]["r"] is None and parsed["b"][0] is None and parsed["a"]["ok"] == 1.5
    assert parsed["non_finite"] == ["a.r", "b[0]"] and "null" in parsed["notes"][0]
    assert "notes" not in json.loads(strict_json.dumps({"a": 1.0}))


def test_library_warnings_are_recorded_not_shown(recwarn):
    from latentds.datasets.shards import ShardWarning

    with library_warnings() as found:
        np.corrcoef(np.ones(5), np.arange(5.0))  # numpy: RuntimeWarning, invalid value in divide
        warnings.warn("shard x lost 2 samples", ShardWarning)  # ours: reaches the user
    assert found and all(line.startswith("RuntimeWarning") for line in found)
    assert [w.category for w in recwarn.list] == [ShardWarning]


@pytest.mark.slow
def test_baselines_tell_a_working_model_from_a_blob():
    torch.manual_seed(0)
    images = -torch.ones(16, 3, 32, 32)
    for i in range(16):  # a bright square at a different place in each image
        images[i, :, 2 + i: 10 + i, 4 + i: 12 + i] = 0.8
    baselines = image_baselines(images)
    assert {"background", "mean_image"} <= set(baselines)
    good = (images + 0.02 * torch.randn_like(images)).clamp(-1, 1)
    from latentds.analysis.image_metrics import per_image_mse, per_image_ssim

    mse, ssim = float(per_image_mse(images, good).mean()), float(per_image_ssim(images, good).mean())
    assert verdict(mse, ssim, baselines)["beats_baselines"]
    blob = images.mean(0, keepdim=True).expand_as(images).contiguous() + 0.01
    mse, ssim = float(per_image_mse(images, blob).mean()), float(per_image_ssim(images, blob).mean())
    result = verdict(mse, ssim, baselines)
    assert not result["beats_baselines"]
    summary = {"mse": mse, "ssim": ssim, "baselines": baselines, **result}
    assert "does NOT beat" in sentence(summary)


@pytest.mark.parametrize("values", [[1.0], [5.0, 5.0], [0.0, 1e-6]])
def test_is_constant_edges(values):
    assert is_constant(np.array(values))


@pytest.mark.slow
def test_analysis_of_phi_data_is_strict_and_quiet(phi_set, tmp_path, recwarn):
    """On --phi data (constant colours stored as float32) the probes leave the constants out, the report says so,
    metrics.json is strict JSON and no RuntimeWarning reaches the user."""
    from latentds.analysis.runner import run
    from latentds.zoo.base import create

    _, data = phi_set
    torch.manual_seed(0)
    model = create("vae", image_size=16, latent_dim=8, width=8)
    metrics = run(model, data, tmp_path, probes=["pca", "metrics", "factors"], n=40, progress=False)
    assert not [w for w in recwarn.list if issubclass(w.category, RuntimeWarning)]
    constant = metrics["data"]["constant_factors"]["names"]
    assert "color_0_r" in constant and "phi_0" not in constant
    assert set(metrics["pca"]["factor_correlation"]["pc1"]) == {"phi_0"}
    text = (tmp_path / "metrics.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    report = (tmp_path / "report.html").read_text()
    assert "Constant factors" in report and "color_0_r" in report
    assert "Does the model work?" in report and "does NOT beat" in report  # an untrained model does not
    assert {"background", "mean_image"} <= set(metrics["metrics"]["baselines"])


def test_recorded_warnings_are_a_header_row_not_a_probe(tmp_path):
    from latentds.analysis.report import _page

    metrics = {"model": {"family": "vae", "latent_dim": 8, "has_encoder": True},
               "data": {"source": "d", "n_encoded": 4}, "skipped": {},
               "pca": {"explained_variance_ratio": [0.5]}, "warnings": {"pca": ["RuntimeWarning: x (numpy:1)"]}}
    page = _page(tmp_path, metrics, {"pca": []})
    assert [s["name"] for s in page["sections"]] == ["pca"]
    assert ("Warnings in pca", "RuntimeWarning: x (numpy:1)") in page["checks"]


def test_scores_on_one_factor_or_in_fast_mode_are_labelled(tmp_path):
    from latentds.analysis.report import _checks

    base = {"model": {}, "data": {"source": "d", "n_encoded": 4}, "skipped": {}}
    one = _checks({**base, "scores": {"settings": {"mode": "reference", "n_factors": 1}}})
    assert any("single varying factor" in text and "by construction" in text for _, text in one)
    fast = _checks({**base, "scores": {"settings": {"mode": "fast", "n_factors": 5}}})
    assert any("FAST MODE" in text and "must not be compared with published" in text for _, text in fast)
    assert _checks({**base, "scores": {"settings": {"mode": "reference", "n_factors": 5}}}) == []
