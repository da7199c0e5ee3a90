"""Registries of classes that register themselves by name when they are defined (model families, public datasets).

    FAMILIES = Registry("model family", discover=import_every_family_module)

    class Base:
        def __init_subclass__(cls, family=None, **kwargs):
            super().__init_subclass__(**kwargs)
            if family:
                FAMILIES.add(family, cls)      # RegistrationError on an invalid or taken name
                cls.family = family

    FAMILIES.get("vae")                        # the class; FAMILIES["vae"] is the same
    FAMILIES.get("vea")                        # UnknownNameError: unknown model family 'vea' (did you mean 'vae'?);
                                               # choose one of: ...
    FAMILIES.names()                           # sorted

A name is lower-case letters, digits and ``_``, starting with a letter (it is a CLI word, a file-name and sample-key
prefix, a config value). Registering the same class again (its module re-imported) replaces the entry; another class
under a taken name is refused, naming both. ``get`` and ``names`` first call ``discover`` (which imports the modules
that register), so a registry fills on first use; ``in``, iteration and ``len`` look at what is registered now.
``scope()`` restores the entries on exit: what a test registers inside it does not leak into the global registry.

Imports only latentds.errors, so any layer may use it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from latentds.errors import RegistrationError, UnknownNameError

T = TypeVar("T")
NAME = re.compile(r"[a-z][a-z0-9_]*")


def unknown_name(kind: str, name, choices, *, where: str = "", also: str = "") -> UnknownNameError:
    """The error for a name that is not one of ``choices``: "unknown KIND 'NAME' (did you mean 'CLOSEST'?); choose
    one of: ...". ``where`` prefixes it; ``also`` is added to the choices (e.g. "or a path to a .toml file")."""
    import difflib  # noqa: PLC0415

    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(name, choices, n=1) if isinstance(name, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(choices) or "(none registered)"
    return UnknownNameError(f"{where + ': ' if where else ''}unknown {kind} {name!r}{hint}; choose one of: {listed}"
                            f"{', ' + also if also else ''}")


def check_name(kind: str, name, choices, *, where: str = "") -> None:
    """``name`` is one of ``choices``, else the UnknownNameError of ``unknown_name``."""
    if name not in choices:
        raise unknown_name(kind, name, choices, where=where)


def qualified_name(obj) -> str:
    """``module.QualName`` of a class or function (what registration errors name)."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


class Registry(Generic[T]):
    """Objects (classes) by name; ``kind`` (e.g. "model family") words the errors."""

    def __init__(self, kind: str, *, discover: Callable[[], object] | None = None):
        self.kind = kind
        self._discover = discover
        self._entries: dict[str, T] = {}

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` as ``name``; RegistrationError if the name is invalid or taken by another object."""
        where = qualified_name(obj)
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise RegistrationError(f"{where}: {self.kind} name {name!r} must be lower-case letters, digits and '_', "
                                    "starting with a letter")
        known = self._entries.get(name)
        if known is not None and qualified_name(known) != where:
            raise RegistrationError(f"{self.kind} {name!r} is already registered by {qualified_name(known)}; "
                                    f"{where} must choose another name")
        self._entries[name] = obj

    def get(self, name: str, *, where: str = "") -> T:
        """The object registered as ``name`` (after discovery). Unlike ``dict.get``, an unknown name is an
        UnknownNameError that suggests the closest name and lists the choices; ``where`` prefixes the message."""
        self.discover()
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        raise unknown_name(self.kind, name, sorted(self._entries), where=where)

    __getitem__ = get

    def names(self) -> list[str]:
        """Every registered name (after discovery), sorted."""
        self.discover()
        return sorted(self._entries)

    def discover(self) -> None:
        """Run the discovery hook (imports the modules that register; cheap once they are imported)."""
        if self._discover is not None:
            self._discover()

    def pop(self, name: str, default: T | None = None) -> T | None:
        """Forget ``name`` (tests that register throwaway classes)."""
        return self._entries.pop(name, default)

    @contextlib.contextmanager
    def scope(self) -> Iterator[Registry[T]]:
        """Registrations made inside the block are undone when it ends (the entries before it are restored).
        Discovery runs first, so a module the block imports for the first time cannot take its classes away."""
        self.discover()
        before = dict(self._entries)
        try:
            yield self
        finally:
            self._entries.clear()
            self._entries.update(before)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"
