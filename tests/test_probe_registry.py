"""The probe registry: every probe declares its needs and explanation; the report and the CLI help come from it, and a
newly registered probe is run, explained and listed without touching anything else."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from markupsafe import escape

from latentds.analysis.probes import run
from latentds.analysis.registry import NEEDS, PROBE_MODULES, PROBES, Skip, probe
from latentds.analysis.registry import registered as registered_probes
from latentds.analysis.report import write_report
from latentds.cli import main
from latentds.render import RenderSpec, render_shards
from latentds.zoo.base import create

BUILT_IN = ("health", "pca", "interpolation", "umap", "metrics", "fid", "walks", "scores", "factors", "factorvae", "verification",
            "arithmetic", "partition")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    base = tmp_path_factory.mktemp("registry")
    render_shards(RenderSpec("varied", n=16, size=16, shard_size=16, seed=3), base / "data", workers=1,
                  progress=False)
    torch.manual_seed(0)
    model = create("vae", image_size=16, width=8, latent_dim=4).eval()
    model.save_pretrained(base / "model")
    return base, model


@pytest.fixture
def registered():
    """Register probes for one test and remove them afterwards, so that no other test sees them."""
    names = []

    def register(name, **kwargs):
        names.append(name)
        return probe(name, **kwargs)

    yield register
    for name in names:
        PROBES.pop(name)
    assert tuple(PROBES) == BUILT_IN


def test_the_built_in_probes_keep_their_names_and_order():
    assert tuple(PROBES) == BUILT_IN


@pytest.mark.parametrize("name", list(PROBES))
def test_every_probe_declares_known_needs_and_an_explanation(name):
    registered = PROBES[name]
    assert registered.name == name and callable(registered.run)
    assert registered.explain.strip() and registered.explain == registered.explain.strip()
    assert set(registered.needs) <= set(NEEDS) and len(set(registered.needs)) == len(registered.needs)


@pytest.mark.parametrize("name", list(PROBES))
def test_the_report_explains_each_probe_from_the_registry(name, tmp_path):
    (tmp_path / "figures").mkdir()
    metrics = {name: {"value": 1.0}, "skipped": {}, "model": {"family": "vae", "latent_dim": 4, "has_encoder": True},
               "data": {"source": "data", "n_encoded": 16}}
    report = write_report(tmp_path, metrics, {}).read_text()
    section = report.split(f'<section id="probe-{name}">')[1].split("</section>")[0]
    assert f'<p class="explain">{escape(PROBES[name].explain)}</p>' in section
    assert f'<a href="#probe-{name}">{name}</a>' in report  # listed in the contents


def test_every_probe_module_is_registered_in_order_whichever_is_imported_first():
    package = Path(__import__("latentds.analysis", fromlist=["x"]).__file__).parent
    modules = {f"latentds.analysis.{p.stem}" for p in package.glob("probe_*.py")}
    assert modules == set(PROBE_MODULES)  # a new probe module cannot be left out of the registry
    code = ("import latentds.analysis.probe_partition, latentds.analysis.probe_factors;"
            "from latentds.analysis.registry import registered; print(','.join(registered()))")
    listed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert tuple(listed.strip().split(",")) == BUILT_IN


def test_analyze_help_lists_every_registered_probe_without_importing_torch():
    code = ("import sys; from click.testing import CliRunner; from latentds.cli import main;"
            "out = CliRunner().invoke(main, ['analyze', '--help']).output;"
            "heavy = {'torch', 'torchvision', 'sklearn', 'matplotlib', 'umap', 'webdataset'} & set(sys.modules);"
            "print(sorted(heavy)); print(out)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy, help_text = result.split("\n", 1)
    assert heavy == "[]"
    flat = "".join(help_text.split())  # click wraps lines, also at hyphens
    assert "".join(f"[default: all]: {', '.join(BUILT_IN)}.".split()) in flat
    for name, registered_probe in registered_probes().items():  # each probe with its needs and explanation
        needs = ", ".join(k for k in NEEDS if k in registered_probe.needs) or "nothing"
        assert "".join(f"{name} [needs {needs}] {registered_probe.explain}".split()) in flat


def test_needs_are_checked_in_order_before_the_probe_runs(small, tmp_path, registered):
    base, model = small
    called = []

    @registered("test_needs_partition", needs=("partition", "encoder"), explain="Test only: never runs on a VAE.")
    def needs_partition(ctx):
        called.append(ctx)
        return {}, []

    metrics = run(model, base / "data", tmp_path, probes=["test_needs_partition"], n=8, progress=False)
    assert metrics["skipped"] == {"test_needs_partition": "vae has no s/z partition of its latent"} and not called
    assert PROBES["test_needs_partition"].needs == ("partition", "encoder")

    dcgan = create("dcgan", image_size=16, width=8, latent_dim=4)
    reason = PROBES["test_needs_partition"].missing(type("Ctx", (), {"model": dcgan, "codes": None})())
    assert reason == "dcgan has no encoder: this probe needs latents of the data"  # encoder is checked first


def test_registration_refuses_unknown_needs_a_missing_explanation_and_a_taken_name(registered):
    with pytest.raises(ValueError, match="unknown need 'gpu'"):
        probe("test_bad", needs=("gpu",), explain="x")
    with pytest.raises(ValueError, match="explanation"):
        probe("test_bad", needs=(), explain=" ")
    with pytest.raises(ValueError, match="registered already"):
        probe("pca", explain="another pca")(lambda ctx: ({}, []))
    assert "test_bad" not in PROBES


def test_a_newly_registered_probe_is_run_explained_and_listed(small, tmp_path, registered):
    base, model = small
    explain = "Test only: how many latents were encoded and their width."

    @registered("test_count", needs=("encoder",), explain=explain)
    def count(ctx):
        if ctx.options.n < 2:
            raise Skip("needs two latents")
        return {"n": len(ctx.codes.latents), "dim": int(ctx.codes.latents.shape[1]),
                "mean_norm": float(np.linalg.norm(ctx.codes.latents, axis=1).mean())}, []

    assert list(PROBES)[-1] == "test_count"
    metrics = run(model, base / "data", tmp_path / "a", probes=["test_count"], n=8, progress=False)
    assert metrics["test_count"]["n"] == 8 and metrics["test_count"]["dim"] == 4 and metrics["skipped"] == {}
    report = (tmp_path / "a" / "report.html").read_text()
    assert f'<section id="probe-test_count">\n<h2>test_count</h2>\n<p class="explain">{escape(explain)}</p>' in report

    from latentds.cli.analysis import PROBE_NAMES

    assert PROBE_NAMES[-1] == "test_count" and list(PROBE_NAMES) == list(PROBES)
    help_text = " ".join(CliRunner().invoke(main, ["analyze", "--help"]).stdout.split())
    assert "partition, test_count." in help_text and f"test_count [needs encoder] {explain}" in help_text

    result = CliRunner().invoke(main, ["analyze", str(base / "model"), "--data", str(base / "data"),
                                       "--out", str(tmp_path / "cli"), "--probes", "test_count", "--n", "8",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert "test_count" in (tmp_path / "cli" / "report.html").read_text()


def test_a_probe_declares_its_place_in_the_order(registered):
    @registered("test_early", order=15, explain="Test only: listed between health and pca.")
    def early(ctx):
        return {}, []

    assert list(registered_probes())[:3] == ["health", "test_early", "pca"]
    assert PROBES["test_early"].order == 15 and PROBES["pca"].order == 20
    help_text = " ".join(CliRunner().invoke(main, ["analyze", "--help"]).stdout.split())
    assert "[default: all]: health, test_early, pca," in help_text


def test_an_unknown_probe_suggests_the_closest_everywhere(small, tmp_path):
    from latentds.errors import UnknownNameError

    base, model = small
    with pytest.raises(UnknownNameError, match=r"unknown probe 'umpa' \(did you mean 'umap'\?\)"):
        PROBES.get("umpa")
    with pytest.raises(UnknownNameError, match=r"probes: unknown probe 'umpa' \(did you mean 'umap'\?\)"):
        run(model, base / "data", tmp_path, probes=["umpa"], progress=False)
