"""report.html as a reader meets it (analysis/report.py, templates/report.html.j2): a header with the model, the
data and the key numbers in words, a contents list whose links land, one section per probe with its registered
explanation, figures and numbers, the skipped probes with their reasons -- and every label escaped."""

import base64
import json
import re
import tomllib
from pathlib import Path

import pytest
from analysis_sets import render_analysis_sets
import torch
from markupsafe import escape

from latentds.analysis import report as report_module
from latentds.analysis.registry import registered
from latentds.analysis.report import KEY_NUMBERS, write_report
from latentds.analysis.runner import run
from latentds.zoo.base import create

# every probe runs on a VAE with a cuboid set and a sequence set, but partition (a VAE has no s/z split); umap is
# left out here only for numba's compile time (test_analysis_inputs covers it)
EXPECTED_SKIPPED = {"verification": "needs an identity label on every sample (CelebA packs, renders with "
                                    "--identities K)", "partition": "vae has no s/z partition of its latent"}
PROBES = registered()


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    render_analysis_sets(base, seed=5, n=48, seq_n=24)
    torch.manual_seed(0)
    model = create("vae", image_size=16, width=8, latent_dim=4).eval()
    probes = [name for name in PROBES if name != "umap"]
    metrics = run(model, base / "varied", base / "out", probes=probes, n=48, sequence_data=base / "seq",
                  scores_mode="fast", factorvae={"batch_size": 8, "n_train": 12, "n_eval": 6, "n_variance": 64},
                  progress=False)
    return base / "out", metrics, (base / "out" / "report.html").read_text()


def _section(page: str, name: str) -> str:
    return page.split(f'<section id="probe-{name}">')[1].split("</section>")[0]


@pytest.mark.slow
def test_every_probe_ran_or_was_skipped_for_its_own_reason(analysed):
    _, metrics, page = analysed
    assert metrics["skipped"] == EXPECTED_SKIPPED
    for name, reason in EXPECTED_SKIPPED.items():  # the skipped table: why, and what it would have shown
        row = page.split(f'<tr id="probe-{name}">')[1].split("</tr>")[0]
        assert str(escape(reason)) in row and str(escape(PROBES[name].explain)) in row
    assert [name for name in metrics if name in PROBES] == [p for p in PROBES if p not in ("umap", "verification",
                                                                                          "partition")]


@pytest.mark.parametrize("name", [p for p in PROBES if p != "umap"])
@pytest.mark.slow
def test_each_probe_has_its_section_explanation_figures_and_numbers(analysed, name):
    out, metrics, page = analysed
    assert f'<a href="#probe-{name}">{name}</a>' in page  # contents (or key numbers) link to it
    if name in metrics["skipped"]:
        row = page.split(f'<tr id="probe-{name}">')[1].split("</tr>")[0]
        assert str(escape(metrics["skipped"][name])) in row and str(escape(PROBES[name].explain)) in row
        return
    section = _section(page, name)
    assert f'<p class="explain">{escape(PROBES[name].explain)}</p>' in section
    for key in metrics[name]:  # every number it measured is in its table
        assert f"<th>{escape(key)}</th>" in section, key
    stored = json.loads((out / "metrics.json").read_text())[name]
    assert stored.keys() == metrics[name].keys()


@pytest.mark.slow
def test_figures_are_embedded_in_the_section_of_the_probe_that_drew_them(analysed):
    out, _, page = analysed
    owner = {"pca_strips.png": "pca", "reconstructions.png": "metrics", "walks.png": "walks",
             "arithmetic.png": "arithmetic", "interpolation_group0.png": "interpolation",
             "interpolation_group2.png": "interpolation"}
    drawn = {p.name for p in (out / "figures").iterdir()}
    assert set(owner) <= drawn
    for file in drawn:
        data = base64.b64encode((out / "figures" / file).read_bytes()).decode()
        assert page.count(data) == 1, file
        if file in owner:
            assert data in _section(page, owner[file]), file
    assert 'class="pixelated"' in page  # 16 px grids are scaled up, drawn as pixels


@pytest.mark.slow
def test_the_header_says_what_was_analysed_and_the_key_numbers_in_words(analysed):
    _, metrics, page = analysed
    header = page.split("<header>")[1].split("</header>")[0]
    assert "<code>vae</code>, latent dimension 4" in header and "48 images encoded" in header
    ran = [name for name in PROBES if name in metrics]
    assert f"{len(ran)} run ({', '.join(ran)});\n2 skipped (verification, partition)" in header
    shown = 0
    for path, label, meaning in KEY_NUMBERS:
        value = report_module._lookup(metrics, path)
        if value is None:
            continue
        shown += 1
        row = header.split(f">{escape(label)}</a>")[1].split("</tr>")[0]
        assert f'<td class="value">{value:.4g}</td>' in row, path
        if "{network}" in meaning:  # FID says in which network's features
            assert str(escape(metrics["fid"]["samples"]["feature_network"])) in row
    assert shown == len(KEY_NUMBERS)  # this run measures every key number


@pytest.mark.slow
def test_every_link_of_the_page_lands(analysed):
    _, _, page = analysed
    targets = set(re.findall(r'href="#([^"]+)"', page))
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert targets and targets <= ids


def test_labels_captions_and_reasons_are_escaped(tmp_path):
    (tmp_path / "figures").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "figures" / "x.png")
    hostile = "<script>alert('x')</script>"
    metrics = {"pca": {hostile: {hostile: 1.0}, "note": hostile}, "skipped": {"scores": hostile},
               "model": {"family": hostile, "latent_dim": 4, "has_encoder": True},
               "data": {"source": hostile, "n_encoded": 3, "factor_names": [hostile]}}
    page = write_report(tmp_path, metrics, {"pca": [("x.png", hostile)], "scores": []}).read_text()
    assert "<script>" not in page and str(escape(hostile)) in page
    assert page.count(str(escape(hostile))) >= 7  # title, h1, header table, factors, table key, cell, caption, ...


def test_nested_numbers_read_as_tables_not_json(tmp_path):
    (tmp_path / "figures").mkdir()
    correlation = {f"pc{i}": {f"factor_{j}": 0.1 * j for j in range(12)} for i in range(1, 4)}
    metrics = {"pca": {"explained_variance_ratio": [0.5, 0.25], "factor_correlation": correlation}, "skipped": {},
               "model": {"family": "vae", "latent_dim": 4, "has_encoder": True},
               "data": {"source": "d", "n_encoded": 3}}
    section = _section(write_report(tmp_path, metrics, {}).read_text(), "pca")
    assert "0.5, 0.25" in section and "{" not in section
    # 3 components x 12 factors: one matrix, the factors as rows, the components as columns
    assert "<tr><th></th><th>pc1</th><th>pc2</th><th>pc3</th></tr>" in section
    assert "<tr><th>factor_11</th><td>1.1</td><td>1.1</td><td>1.1</td></tr>" in section


def test_the_template_ships_with_the_package():
    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["latentds.analysis"]
    package = Path(report_module.__file__).parent
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    assert package / "templates" / report_module.TEMPLATE in shipped
    assert any(d.startswith("jinja2") for d in config["project"]["dependencies"])
