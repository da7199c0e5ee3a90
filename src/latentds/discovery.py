"""Discovery: the modules of a package that register something, found by pkgutil and imported on first use.

    FAMILY_MODULES = PackageModules("latentds.zoo.models")                        # every module
    PROBE_MODULES = PackageModules("latentds.analysis", prefix="probe_")           # probe_*.py
    DATASET_MODULES = PackageModules("latentds.datasets", declares=defines_dataset)  # those whose source says so

    FAMILIES = Registry("model family", discover=FAMILY_MODULES)   # a Registry calls it before get / names

Calling a ``PackageModules`` imports the modules not imported yet (each registers what it defines) and returns
their names; iterating it lists them without importing any. ``prefix`` keeps the modules whose name starts with
it; ``declares(tree)``, a test of a module's parsed source (``ast``), keeps those for which it is true, read once
per module and never importing it, so a package whose other modules import torch can be searched without torch.
The package is listed again on every call (cheap), so a module added at run time (a test's) is found.
``trees()`` gives every module's parsed source, for checks that read declarations without importing
(zoo/names.py reads the families' config fields this way).

Imports nothing of latentds, so any layer may use it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Iterator


class PackageModules:
    """The registering modules of ``package``: ``prefix`` and ``declares`` choose among its modules."""

    def __init__(self, package: str, *, prefix: str = "", declares: Callable[[ast.Module], bool] | None = None):
        self.package = package
        self.prefix = prefix
        self.declares = declares
        self._declared: dict[str, bool] = {}  # module -> declares(its source), read once each

    def __call__(self) -> list[str]:
        """Import every chosen module not imported yet; their names, in name order."""
        chosen = list(self)
        for module in chosen:
            if module not in sys.modules:
                importlib.import_module(module)
        return chosen

    def __iter__(self) -> Iterator[str]:
        """The chosen modules' names, in name order; nothing is imported."""
        for name in self._names():
            if self.declares is None:
                yield name
                continue
            if name not in self._declared:
                tree = self._tree(name)
                self._declared[name] = tree is not None and bool(self.declares(tree))
            if self._declared[name]:
                yield name

    def trees(self) -> Iterator[tuple[str, ast.Module]]:
        """(name, parsed source) of every module with the prefix, chosen or not; nothing imported."""
        for name in self._names():
            tree = self._tree(name)
            if tree is not None:
                yield name, tree

    def forget(self, *modules: str) -> None:
        """Read these modules' sources again next time (a test that adds and removes a module)."""
        for module in modules:
            self._declared.pop(module, None)

    def _names(self) -> list[str]:
        package = importlib.import_module(self.package)
        return sorted(f"{self.package}.{m.name}" for m in pkgutil.iter_modules(package.__path__)
                      if not m.ispkg and m.name.startswith(self.prefix))

    @staticmethod
    def _tree(name: str) -> ast.Module | None:
        spec = importlib.util.find_spec(name)
        source = spec.loader.get_source(name) if spec is not None and spec.loader is not None else None
        return ast.parse(source, filename=spec.origin or name) if source else None

    def __repr__(self) -> str:
        return f"PackageModules({self.package!r}, prefix={self.prefix!r})"
