"""Declarative checks of parsed JSON: types, ranges, string lengths and nesting depth.

A check is a callable ``check(value, where)`` that returns nothing for a value it accepts and
raises :class:`Problem` (naming the dotted field ``where`` and what is wrong) for one it does not.
They compose: :class:`Fields` checks an object's known keys, :class:`MapOf` and :class:`ListOf`
every value and item, :class:`Optional` adds ``null``. Every number must be finite (JSON files
written by Python may hold ``NaN`` and ``Infinity``), every string has a length cap, and
:class:`AnyJson` bounds the depth, size and string lengths of free-form provenance blocks, so that
no file read through these checks can make a reader copy megabytes or recurse without end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Longest string accepted where a check does not say otherwise.
MAX_TEXT = 1_000
#: Most items of a list or object accepted where a check does not say otherwise.
MAX_ITEMS = 100_000

Check = Callable[[Any, str], None]

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
               type(None): "null", dict: "an object", list: "a list"}


class Problem(ValueError):
    """A value that fails a check.

    Attributes:
        field: the dotted name of the field (``""`` for the whole document).
        reason: what is wrong, e.g. ``"is a string, expected a number or null"``.
    """

    def __init__(self, field: str, reason: str, wrong_type: bool = False) -> None:
        super().__init__(f"field '{field}' {reason}" if field else reason)
        self.field = field
        self.reason = reason
        #: The value has none of the expected types (rather than a bad value of a right one).
        self.wrong_type = wrong_type


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, with its article (``"a string"``, ``"null"``)."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def finite_number(value: Any) -> bool:
    """Whether ``value`` is an ``int`` or ``float`` (not ``bool``) and finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _wrong_type(value: Any, where: str, expected: str) -> Problem:
    return Problem(where, f"is {json_type(value)}, expected {expected}", wrong_type=True)


@dataclass(frozen=True)
class Number:
    """A finite number between ``low`` and ``high``, ``low`` excluded if ``positive``.

    Attributes:
        low: the least value.
        high: the greatest value.
        integer: only whole numbers (JSON integers).
        positive: ``low`` itself is out of range.
    """

    low: float = -math.inf
    high: float = math.inf
    integer: bool = False
    positive: bool = False

    @property
    def expected(self) -> str:
        """What the messages say is expected."""
        return "an integer" if self.integer else "a number"

    def __call__(self, value: Any, where: str) -> None:
        """Raise :class:`Problem` unless ``value`` is a finite number (integer) in range."""
        kind = int if self.integer else (int, float)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _wrong_type(value, where, self.expected)
        if not math.isfinite(value):
            raise Problem(where, f"is {value}, expected a finite number")
        if not self.low <= value <= self.high or (self.positive and value <= self.low):
            bracket = "(" if self.positive else "["
            raise Problem(where, f"is {value!r}, outside {bracket}{self.low:g}, {self.high:g}]")


@dataclass(frozen=True)
class Text:
    """A string of at most ``max_length`` characters, one of ``choices`` when given."""

    max_length: int = MAX_TEXT
    choices: tuple[str, ...] = ()

    expected = "a string"

    def __call__(self, value: Any, where: str) -> None:
        """Raise :class:`Problem` unless ``value`` is a short enough string (among the choices)."""
        if not isinstance(value, str):
            raise _wrong_type(value, where, self.expected)
        if len(value) > self.max_length:
            raise Problem(where, f"is {len(value)} characters long, more than {self.max_length}")
        if self.choices and value not in self.choices:
            raise Problem(where, f"is {value[:40]!r}, expected one of {', '.join(self.choices)}")


@dataclass(frozen=True)
class Flag:
    """``true`` or ``false``."""

    expected = "true/false"

    def __call__(self, value: Any, where: str) -> None:
        """Raise :class:`Problem` unless ``value`` is a bool."""
        if not isinstance(value, bool):
            raise _wrong_type(value, where, self.expected)


@dataclass(frozen=True)
class Either:
    """A value that passes one of ``checks`` (tried in order; the first one's message if none)."""

    checks: tuple[Check, ...]

    @property
    def expected(self) -> str:
        """What the messages say is expected."""
        return " or ".join(getattr(c, "expected", "a value") for c in self.checks)

    def __call__(self, value: Any, where: str) -> None:
        """Raise :class:`Problem` unless one of the checks accepts ``value``."""
        problems = []
        for check in self.checks:
            try:
                check(value, where)
                return
            except Problem as problem:
                problems.append(problem)
        # A value of a right type but out of range says so; one of no right type names them all.
        ranged = [p for p in problems if not p.wrong_type]
        raise ranged[0] if ranged else _wrong_type(value, where, self.expected)


@dataclass(frozen=True)
class Optional:
    """``null`` or a value that passes ``check``."""

    check: Check

    @property
    def expected(self) -> str:
        """What the messages say is expected."""
        return f"{getattr(self.check, 'expected', 'a value')} or null"

    def __call__(self, value: Any, where: str) -> None:
        """Raise :class:`Problem` unless ``value`` is ``None`` or passes the check."""
        if value is None:
            return
        try:
            self.check(value, where)
        except Problem as problem:
            if problem.wrong_type and problem.field == where:
                raise _wrong_type(value, where, self.expected) from None
            raise


def _check_size(value: Any, where: str, max_items: int) -> None:
    if len(value) > max_items:
        raise Problem(where, f"has {len(value)} items, more than {max_items}")


@dataclass(frozen=True)
class ListOf:
    """A list of at most ``max_items`` items, each passing ``item``."""

    item: Check
    max_items: int = MAX_ITEMS

    expected = "a list"

    def __call__(self, value: Any, where: str) -> None:
        """Raise :class:`Problem` unless ``value`` is a short enough list of good items."""
        if not isinstance(value, list):
            raise _wrong_type(value, where, self.expected)
        _check_size(value, where, self.max_items)
        for i, item in enumerate(value):
            self.item(item, f"{where}[{i}]")


@dataclass(frozen=True)
class MapOf:
    """An object of at most ``max_items`` short keys, every value passing ``value``."""

    value: Check
    max_items: int = 1_000

    expected = "an object"

    def __call__(self, value: Any, where: str) -> None:
        """Raise :class:`Problem` unless ``value`` is a small enough object of good values."""
        if not isinstance(value, dict):
            raise _wrong_type(value, where, self.expected)
        _check_size(value, where, self.max_items)
        for key, item in value.items():
            Text()(key, f"{where} key")
            self.value(item, f"{where}.{key}" if where else key)


@dataclass(frozen=True)
class Fields:
    """An object whose listed keys pass their checks.

    Keys not listed are bounded like free-form JSON (:class:`AnyJson`), so that a newer writer's
    extra fields are read but can neither nest without end nor hold huge strings.

    Attributes:
        checks: ``key -> check`` of the known keys (absent ones are allowed unless required).
        required: keys that must be present.
    """

    checks: Mapping[str, Check]
    required: tuple[str, ...] = ()
    extra: Check = field(default_factory=lambda: AnyJson())

    expected = "an object"

    def __call__(self, value: Any, where: str) -> None:
        """Raise :class:`Problem` at the first bad field of ``value`` (or if it is no object)."""
        if not isinstance(value, dict):
            raise _wrong_type(value, where, self.expected)
        prefix = f"{where}." if where else ""
        _check_size(value, where, MAX_ITEMS)
        for key, item in value.items():
            Text()(key, f"{where} key" if where else "key")
            self.checks.get(key, self.extra)(item, f"{prefix}{key}")
        for key in self.required:
            if key not in value:
                raise Problem(f"{prefix}{key}", "is missing")


@dataclass(frozen=True)
class AnyJson:
    """Any JSON value nested at most ``max_depth`` deep, with capped strings and sizes."""

    max_depth: int = 6
    max_length: int = MAX_TEXT
    max_items: int = 10_000

    expected = "a JSON value"

    def __call__(self, value: Any, where: str) -> None:
        """Raise :class:`Problem` where ``value`` nests too deep, or holds too long a string."""
        self._check(value, where, self.max_depth)

    def _check(self, value: Any, where: str, depth: int) -> None:
        if isinstance(value, (dict, list)):
            if depth == 0:
                raise Problem(where, f"nests deeper than {self.max_depth} levels")
            _check_size(value, where, self.max_items)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    Text(self.max_length)(key, f"{where} key")
                self._check(item, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]",
                            depth - 1)
        elif isinstance(value, str):
            Text(self.max_length)(value, where)
        elif isinstance(value, float) and not math.isfinite(value):
            raise Problem(where, f"is {value}, expected a finite number")
