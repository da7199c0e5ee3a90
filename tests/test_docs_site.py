"""The documentation site builds with warnings as errors (`mkdocs build --strict`, as README says), and the check
bites: a broken link, a missing anchor or a renamed public function fails the build. Every public name a package
exports is on its API reference page."""

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE_FILES = ("mkdocs.yml", "README.md", "ARCHITECTURE.md", "CHANGES.md", "docs", "src")
PACKAGES = ("latentds.render", "latentds.datasets", "latentds.zoo", "latentds.analysis", "latentds.studies")


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` of the site configured in ``root``, into ``site``."""
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(root / "mkdocs.yml"), "--site-dir", str(site)],
                          capture_output=True, text=True, timeout=300)


def copy_of_site(tmp_path: Path) -> Path:
    """The files the site is built from, copied (the API reference reads src/ through mkdocs.yml's paths)."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in SITE_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / name)
    return copy


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "ARCHITECTURE.html", "CHANGES.html", "docs/render.html", "docs/performance.html",
                 "docs/results/kl-weight-cpu/results.html", "docs/reference/zoo.html", "docs/reference/cli.html"):
        assert (tmp_path / "site" / page).is_file(), page
    api = (tmp_path / "site" / "docs" / "reference" / "datasets.html").read_text()
    assert "load_shards" in api and "batch_size" in api  # generated from the docstring and the signature
    assert "latentds render" in (tmp_path / "site" / "docs" / "reference" / "cli.html").read_text()


@pytest.mark.slow
def test_a_broken_link_or_anchor_fails_the_build(tmp_path):
    copy = copy_of_site(tmp_path)
    readme = copy / "README.md"
    readme.write_text(readme.read_text() + "\nSee [the guide](docs/no-such-guide.md) and "
                      "[a section](docs/render.md#no-such-section).\n")
    result = build(copy, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-guide.md" in result.stderr and "no-such-section" in result.stderr, result.stderr


@pytest.mark.slow
def test_a_renamed_function_fails_the_build(tmp_path):
    copy = copy_of_site(tmp_path)
    source = copy / "src" / "latentds" / "zoo" / "base.py"
    source.write_text(source.read_text().replace("def families(", "def family_names("))
    result = build(copy, tmp_path / "site")
    assert result.returncode != 0
    assert "latentds.zoo.base.families" in result.stderr, result.stderr


def test_every_public_name_is_on_a_reference_page():
    pages = {p.name: p.read_text() for p in (ROOT / "docs" / "reference").glob("*.md")}
    documented = {m for text in pages.values() for m in re.findall(r"^::: (\S+)", text, re.M)}
    for package in PACKAGES:
        for name in importlib.import_module(package).__all__:
            assert any(identifier.endswith(f".{name}") for identifier in documented), f"{package}.{name}"
    import latentds

    for name in latentds.__all__:
        assert name == "__version__" or f"`latentds.{name}`" in pages["latentds.md"], f"latentds.{name}"
