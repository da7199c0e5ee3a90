"""latentds.discovery: the one way the registries find the modules that register (families, datasets, probes)."""

import sys
import textwrap

import pytest

from latentds.discovery import PackageModules


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throwaway package: two registering modules, one that must never be imported, one subpackage."""
    root = tmp_path / "throwaway_registering"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "reg_first.py").write_text("SEEN = []\nclass First:  # registers\n    pass\n")
    (root / "reg_second.py").write_text(textwrap.dedent('''
        def registers(name):
            return lambda f: f

        @registers("second")
        def second():
            pass
    '''))
    (root / "helpers.py").write_text("raise RuntimeError('a module that registers nothing was imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "throwaway_registering"
    for name in [m for m in sys.modules if m.startswith("throwaway_registering")]:
        del sys.modules[name]


def test_listing_imports_nothing_and_calling_imports_the_chosen_modules(package):
    by_prefix = PackageModules(package, prefix="reg_")
    assert list(by_prefix) == [f"{package}.reg_first", f"{package}.reg_second"]
    assert f"{package}.reg_first" not in sys.modules
    assert by_prefix() == [f"{package}.reg_first", f"{package}.reg_second"]
    assert f"{package}.reg_first" in sys.modules and f"{package}.helpers" not in sys.modules


def test_a_declaration_in_the_source_chooses_a_module_without_importing_the_others(package):
    import ast

    def declares_class(tree):
        return any(isinstance(node, ast.ClassDef) for node in tree.body)

    by_source = PackageModules(package, declares=declares_class)
    assert by_source() == [f"{package}.reg_first"]  # helpers is read, never imported; sub is a package
    assert f"{package}.helpers" not in sys.modules
    assert {name for name, _ in by_source.trees()} == {f"{package}.{m}" for m in ("helpers", "reg_first",
                                                                                   "reg_second")}


def test_a_module_added_later_is_found_and_forget_reads_a_source_again(package, tmp_path):
    import ast

    def declares_function(tree):
        return any(isinstance(node, ast.FunctionDef) for node in tree.body)

    modules = PackageModules(package, declares=declares_function)
    assert list(modules) == [f"{package}.reg_second"]
    (tmp_path / package / "reg_third.py").write_text("def third():\n    pass\n")
    assert list(modules) == [f"{package}.reg_second", f"{package}.reg_third"]
    (tmp_path / package / "reg_third.py").write_text("THIRD = 3\n")
    assert f"{package}.reg_third" in list(modules)  # read once
    modules.forget(f"{package}.reg_third")
    assert list(modules) == [f"{package}.reg_second"]
