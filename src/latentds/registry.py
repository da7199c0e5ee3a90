"""Registries of what registers itself by name when it is defined: model families, public datasets, probes.

    FAMILIES = Registry("model family", discover=PackageModules("latentds.zoo.models"))

    class Base:
        def __init_subclass__(cls, family=None, **kwargs):
            super().__init_subclass__(**kwargs)
            if family:
                FAMILIES.add(family, cls)      # RegistrationError on an invalid or taken name
                cls.family = family

    FAMILIES.get("vae")                        # the class; FAMILIES["vae"] is the same
    FAMILIES.get("vea")                        # UnknownNameError: unknown model family 'vea' (did you mean 'vae'?);
                                               # choose one of: ...
    FAMILIES.names()                           # in the registry's order: by name unless it has an ``order``

A name is lower-case letters, digits and ``_``, starting with a letter (it is a CLI word, a file-name and sample-key
prefix, a config value). Registering the same owner again (its module re-imported) replaces the entry; another
owner under a taken name is refused, naming both (the owner is the object itself, or what ``add(owner=...)``
names: the decorated function of a probe). ``get``, ``names`` and ``items`` first call ``discover`` (one
latentds.discovery.PackageModules: it imports the modules that register), so a registry fills on first use; ``in``,
iteration and ``len`` look at what is registered now. ``order(obj)`` sorts the entries (stable: ties keep their
registration order; probes declare theirs, ``@probe(order=...)``); without it they are listed by name. ``scope()``
restores the entries on exit: what a test registers inside it does not leak into the global registry.

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
    """Objects by name (classes, or probes), in name order or ``order``; ``kind`` (e.g. "model family") words the
    errors."""

    def __init__(self, kind: str, *, discover: Callable[[], object] | None = None,
                 order: Callable[[T], object] | None = None):
        self.kind = kind
        self.discovery = discover
        self._order = order
        self._entries: dict[str, T] = {}
        self._owners: dict[str, str] = {}  # name -> qualified name of what registered it

    def add(self, name: str, obj: T, *, owner: object = None) -> None:
        """Register ``obj`` as ``name``; RegistrationError if the name is invalid or taken by another owner
        (``owner``, default ``obj``: what registration errors name and re-registration compares)."""
        where = qualified_name(obj if owner is None else owner)
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise RegistrationError(f"{where}: {self.kind} name {name!r} must be lower-case letters, digits and '_', "
                                    "starting with a letter")
        known = self.owner(name)
        if known is not None and known != where:
            raise RegistrationError(f"{self.kind} {name!r} is already registered by {known}; "
                                    f"{where} must choose another name")
        self._entries[name] = obj
        self._owners[name] = where

    def owner(self, name: str) -> str | None:
        """``module.QualName`` of what registered ``name`` (None when nothing has)."""
        return self._owners.get(name) if name in self._entries else None

    def get(self, name: str, *, where: str = "") -> T:
        """The object registered as ``name`` (after discovery). Unlike ``dict.get``, an unknown name is an
        UnknownNameError that suggests the closest name and lists the choices; ``where`` prefixes the message."""
        self.discover()
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        raise unknown_name(self.kind, name, self._ordered(), where=where)

    __getitem__ = get

    def names(self) -> list[str]:
        """Every registered name (after discovery), in the registry's order."""
        self.discover()
        return self._ordered()

    def items(self) -> list[tuple[str, T]]:
        """(name, object) of every entry (after discovery), in the registry's order."""
        return [(name, self._entries[name]) for name in self.names()]

    def discover(self) -> None:
        """Run the discovery hook (imports the modules that register; cheap once they are imported)."""
        if self.discovery is not None:
            self.discovery()

    def pop(self, name: str, default: T | None = None) -> T | None:
        """Forget ``name`` (tests that register throwaway classes)."""
        self._owners.pop(name, None)
        return self._entries.pop(name, default)

    def _ordered(self) -> list[str]:
        if self._order is None:
            return sorted(self._entries)
        return sorted(self._entries, key=lambda name: self._order(self._entries[name]))  # stable

    @contextlib.contextmanager
    def scope(self) -> Iterator[Registry[T]]:
        """Registrations made inside the block are undone when it ends (the entries before it are restored).
        Discovery runs first, so a module the block imports for the first time cannot take its classes away."""
        self.discover()
        before, owners = dict(self._entries), dict(self._owners)
        try:
            yield self
        finally:
            self._entries.clear()
            self._entries.update(before)
            self._owners.clear()
            self._owners.update(owners)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._ordered())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self._ordered()})"
