"""Frozen config dataclasses <-> plain dicts (JSON/TOML), strictly.

huggingface_hub's mixin drops unknown keys and turns tuples into lists when it rebuilds a dataclass; configs here
are rebuilt by ``from_dict`` instead: an unknown or mistyped key is an error naming the key and the valid ones,
and tuple fields come back as tuples. The annotations understood: bool, int, float, str, ``X | None``,
``tuple[X, ...]``, ``tuple[X, Y]`` (that many items), ``Literal[...]`` and a nested config dataclass (from a table).
The analysis options (latentds.analysis.options) are read by the same function.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from latentds.errors import InvalidParameterError


def _accepts(annotation, value) -> tuple[bool, Any]:
    """(ok, value converted to the annotation) for the annotations our configs use."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            ok, converted = _accepts(option, value)
            if ok:
                return True, converted
        return False, value
    if annotation is type(None):
        return value is None, value
    if origin is typing.Literal:
        return any(type(value) is type(choice) and value == choice for choice in typing.get_args(annotation)), value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis or not args:
            items = [args[0] if args else Any] * len(value)
        elif len(args) == len(value):
            items = list(args)
        else:
            return False, value
        converted = []
        for item, v in zip(items, value):
            ok, c = _accepts(item, v)
            if not ok:
                return False, value
            converted.append(c)
        return True, tuple(converted)
    if annotation is Any:
        return True, value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if annotation is str:
        return isinstance(value, str), value
    return isinstance(value, annotation), value


def from_dict(cls, data: dict, where: str = "config"):
    """An instance of dataclass ``cls`` from ``data``; InvalidParameterError on unknown keys or wrong types."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        import difflib  # noqa: PLC0415

        close = difflib.get_close_matches(unknown[0], list(fields), n=1) if isinstance(unknown[0], str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidParameterError(f"unknown key {unknown[0]!r} in {where}{hint}; valid keys: "
                                    f"{', '.join(sorted(fields))}")
    values = {}
    for key, value in data.items():
        nested = _dataclass_in(hints[key])
        if nested is not None and isinstance(value, dict):  # a table: its own keys checked, named under ``key``
            values[key] = from_dict(nested, value, f"{where}.{key}")
            continue
        ok, converted = _accepts(hints[key], value)
        if not ok:
            raise InvalidParameterError(f"{where}.{key} must be {_type_name(hints[key])}, not {value!r}")
        values[key] = converted
    try:
        return cls(**values)
    except TypeError as e:  # a required field is missing
        raise InvalidParameterError(f"{where}: {e}") from None


def to_dict(config) -> dict:
    """The JSON/TOML form of a config dataclass (tuples become lists, as JSON has no tuples)."""
    return dataclasses.asdict(config)


def _dataclass_in(annotation):
    """The dataclass an annotation is, or holds beside None (``X | None``); None if it holds none."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (
        annotation,)
    return next((a for a in options if dataclasses.is_dataclass(a)), None)


def _type_name(annotation) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(annotation)))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return f"a list of {len(args)} ({', '.join(_type_name(a) for a in args)})"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
