"""Install metadata: ranges for users, pins for CI only, the Python requirement before the install command, and
README's first command and its measured time where the benchmark script finds them."""

import importlib.util
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
README = (ROOT / "README.md").read_text()


def _requirements() -> dict[str, Requirement]:
    return {Requirement(r).name.lower().replace("_", "-"): Requirement(r) for r in PYPROJECT["project"]["dependencies"]}


def _constraints(name: str = "constraints.txt") -> dict[str, str]:
    lines = (ROOT / ".ci" / name).read_text().splitlines()
    return {name.lower().replace("_", "-"): version for name, _, version in
            (line.partition("==") for line in lines if "==" in line and not line.startswith("#"))}


def _all_requirements() -> list[Requirement]:
    """The dependencies and every extra's, less latentds's own extras."""
    extras = PYPROJECT["project"]["optional-dependencies"].values()
    named = PYPROJECT["project"]["dependencies"] + [r for extra in extras for r in extra]
    return [Requirement(r) for r in named if Requirement(r).name != "latentds"]


def _lower_bound(requirement: Requirement) -> Version | None:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    return max(bounds) if bounds else None


def test_users_get_ranges_on_python_3_11_to_3_13():
    python = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert all(v in python for v in ("3.11", "3.12", "3.13")) and "3.14" not in python and "3.10" not in python
    requirements = _requirements()
    for name, oldest in (("torch", "2.11.0"), ("torchvision", "0.26.0")):
        spec = requirements[name].specifier
        assert "==" not in str(spec), f"{name} is pinned for users: {spec}"
        assert oldest in spec and "2.14.1" in requirements["torch"].specifier
    for name in ("numpy", "scikit-learn", "huggingface-hub"):
        assert requirements[name].specifier, f"{name} has no range"


def test_ci_pins_the_newest_combination_within_the_ranges():
    pins = _constraints()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    for requirement in _all_requirements():
        key = requirement.name.lower().replace("_", "-")
        assert key in pins, f"{requirement.name} is not pinned in .ci/constraints.txt"
        assert pins[key] in requirement.specifier, f"{requirement.name}=={pins[key]} outside {requirement.specifier}"


def test_ci_pins_the_oldest_combination_at_every_lower_bound():
    """.ci/constraints-oldest.txt holds each dependency at the version pyproject.toml names as its lowest, so a lower
    bound is raised in pyproject.toml when the oldest pass shows that it does not work."""
    pins = _constraints("constraints-oldest.txt")
    assert pins["torch"] == "2.11.0" and pins["torchvision"] == "0.26.0"
    for requirement in _all_requirements():
        key = requirement.name.lower().replace("_", "-")
        lowest = _lower_bound(requirement)
        assert lowest is not None, f"{requirement} has no lower bound"
        assert key in pins, f"{requirement.name} is not pinned in .ci/constraints-oldest.txt"
        assert Version(pins[key]) == lowest, f"oldest pass has {requirement.name}=={pins[key]}, pyproject says {lowest}"


def test_ci_and_its_oldest_pass_install_and_run_exactly_readmes_test_command():
    test_command = re.search(r"```bash\n(\.venv/bin/python -m pytest[^\n]*)\n```", README).group(1)
    for script, pins in (("run", "constraints.txt"), ("run-oldest", "constraints-oldest.txt")):
        text = (ROOT / ".ci" / script).read_text()
        lines = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert [line for line in lines if "pytest" in line] == [test_command] and lines[-1] == test_command
        assert f'.venv/bin/pip install -q -c .ci/{pins} -e ".[test]"' in lines
    oldest = (ROOT / ".ci" / "run-oldest").read_text().splitlines()
    assert ".venv/bin/pip install -q --no-deps -e ." in oldest  # latentds into an environment that has torch


def test_ci_runs_the_oldest_pass_before_the_newest():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert "./.ci/run-oldest" in lines  # under set -e: a failing oldest pass fails CI
    assert lines.index("./.ci/run-oldest") < lines.index("python3 -m venv .venv")
    assert lines[0] == "set -euo pipefail"


def test_python_requirement_comes_before_the_install_command():
    assert README.index("Python 3.11, 3.12 or 3.13") < README.index('pip install -e ".[test]"')


def test_first_command_is_what_the_benchmark_times():
    spec = importlib.util.spec_from_file_location("first_command", ROOT / "benchmarks" / "first_command.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    steps = bench.first_command(README)
    assert [s[0] for s in steps] == ["render", "render", "train", "analyze"]
    assert README.count(bench.START) == 1 and README.count(bench.END) == 1
    assert bench.summary([("train", 10.0, 18.0)]).count("s wall") >= 1


def _requirement_closure(names: list[str]) -> set[str]:
    """Every distribution the named installed ones require, themselves included (markers evaluated here)."""
    seen, todo = set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [canonicalize_name(r.name) for r in map(Requirement, requires)
                 if r.marker is None or r.marker.evaluate({"extra": ""})]
    return seen


def test_the_offline_list_holds_what_latentds_needs_beside_torch():
    """docs/offline-requirements.txt, fetched with CI's newest pins, is what an environment that has torch and
    torchvision lacks: checked against the installed requirements when this environment holds those pins."""
    pins = _constraints()
    installed = {name: metadata.version(name) for name in ("torch", "numpy", "huggingface_hub", "torchmetrics")}
    if any(version != pins[canonicalize_name(name)] for name, version in installed.items()):
        pytest.skip(f"the list is for .ci/constraints.txt's versions; this environment has {installed}")
    lines = (ROOT / "docs" / "offline-requirements.txt").read_text().splitlines()
    listed = {canonicalize_name(line.strip()) for line in lines if line.strip() and not line.startswith("#")}
    needed = _requirement_closure(["latentds"]) - _requirement_closure(["torch", "torchvision"]) - {"latentds"}
    assert needed - listed == set(), "missing from docs/offline-requirements.txt"
    assert listed - needed == set(), "in docs/offline-requirements.txt but not needed"
    assert README.count("docs/offline-requirements.txt") >= 1
