"""Typed coercion for frozen dataclass records: the small part of pydantic the configuration needs.

Values arrive as strings (environment variables), TOML values or Python objects (tests, flags); each
field's annotation says what it must become. Every problem is collected with its location, so a wrong
configuration is reported in one go instead of one fix-and-retry at a time. pydantic did this before,
at ~10 MB of resident memory and ~40 ms of start-up for two models.

A record class opts in by calling `validate(self)` from `__post_init__`; it may declare `_parsers`
(run on the raw value, e.g. splitting a comma list), `_checks` (run on the coerced value, raising
ValueError with the message) and `_problem()` (a whole-record check, run only when every field is good).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, TypeVar

Location = tuple[str | int, ...]
Problem = tuple[Location, str]
Check = Callable[[Any], Any]

UNKNOWN = "未知的设置项"
MISSING = "缺少（必填）"


class Invalid(ValueError):
    """Every problem found, each with where it is: `("port",)`, `("wecom_corps", 1, "agent_id")`, `()`."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(f"{'.'.join(map(str, loc))}: {msg}" if loc else msg for loc, msg in problems))
        self.problems = problems


class Record(Protocol):
    """A dataclass whose fields `validate` coerces; `_problem` is its whole-record check."""

    def _problem(self) -> Problem | None: ...


R = TypeVar("R")
_ABSENT: Any = object()  # stands in for a required value that was not given, so it is reported in field order


def validate(record: Record) -> None:
    """Coerce every field of a (frozen) dataclass in place, then run its whole-record check."""
    values, problems = _coerce_fields(type(record), {f.name: getattr(record, f.name) for f in _fields(type(record))})
    if problems:
        raise Invalid(problems)
    for name, value in values.items():
        object.__setattr__(record, name, value)
    if problem := record._problem():
        raise Invalid([problem])


def build(cls: type[R], values: Mapping[str, Any]) -> R:
    """`cls(**values)` for values from outside: unknown and missing keys are problems like bad values.

    With an unknown key the whole-record check does not run: its advice could be about the misspelt key.
    """
    names = {f.name: f for f in _fields(cls)}
    given = {
        name: values.get(name, _ABSENT)
        for name, f in names.items()
        if name in values or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    }
    unknown: list[Problem] = [((key,), UNKNOWN) for key in values if key not in names]
    if not unknown:
        return cls(**given)
    raise Invalid(_coerce_fields(cls, given)[1] + unknown)


def _coerce_fields(cls: type, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    hints, parsers, checks = _hints(cls), getattr(cls, "_parsers", {}), getattr(cls, "_checks", {})
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, value in values.items():
        try:
            if value is _ABSENT:
                raise ValueError(MISSING)
            out[name] = coerce(parsers[name](value) if name in parsers else value, hints[name])
            if name in checks:
                out[name] = checks[name](out[name])
        except Invalid as err:
            problems += _within(name, err)
        except ValueError as err:
            problems.append(((name,), str(err)))
    return out, problems


def coerce(value: Any, hint: Any) -> Any:
    """`value` as the type `hint` says (int, str, X | None, Literal, tuple[X, ...], a dataclass), or Invalid.

    Locations in the error are relative to `value`; the caller prefixes where the value sits.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (arg for arg in args if arg is not type(None))
        return coerce(value, inner)
    if origin is Literal:
        if value in args:
            return value
        raise _invalid(f"必须是 {' 或 '.join(map(repr, args))}，当前 {value!r}")
    if origin is tuple:
        return _coerce_items(value, args[0])
    if hint is int:
        return _to_int(value)
    if hint is str:
        if isinstance(value, str):
            return value
        # Not the value itself: a secret with its quotes forgotten would be printed in clear.
        raise _invalid(f"必须是字符串（TOML 中要加引号），当前是 {type(value).__name__}")
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            return build(hint, value)
        raise _invalid(f"必须是表，当前是 {type(value).__name__}")
    raise TypeError(f"unsupported field type {hint!r}")


def _coerce_items(value: Any, item_hint: Any) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise _invalid(f"必须是列表，当前是 {type(value).__name__}")
    items: list[Any] = []
    problems: list[Problem] = []
    for index, item in enumerate(value):
        try:
            items.append(coerce(item, item_hint))
        except Invalid as err:
            problems += _within(index, err)
    if problems:
        raise Invalid(problems)
    return tuple(items)


def _to_int(value: Any) -> int:
    """Like pydantic's lax mode: ints (and bools), integral floats, and strings of either ("80", " 80 ", "80.0")."""
    number = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value) if "." in value else int(value)
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, int):
        return int(number)  # True → 1, as pydantic did
    raise _invalid(f"必须是整数，当前 {value!r}")


def _invalid(message: str) -> Invalid:
    return Invalid([((), message)])


def _within(key: str | int, err: Invalid) -> list[Problem]:
    return [((key, *loc), message) for loc, message in err.problems]


def _fields(cls: Any) -> tuple[dataclasses.Field[Any], ...]:  # Any: `build` takes any `type[R]`
    return dataclasses.fields(cls)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)
