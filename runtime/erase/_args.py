"""Argument checks at the door of public functions: a caller's mistake is a one-line
`EraseTypeError` / `EraseValueError` naming the argument, never an exception from deep inside."""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import EraseTypeError, EraseValueError


def type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def ratio(name: str, value: Any, *, optional: bool = True) -> float | None:
    """A share in (0, 1]: a real number (not a bool), finite; None where `optional`."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise EraseTypeError(f"{name}: expected a number in (0, 1]{' or None' if optional else ''}, got {type_name(value)}")
    value = float(value)
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise EraseValueError(f"{name} must be in (0, 1], got {value}")
    return value


def whole(name: str, value: Any, *, minimum: int | None = None, optional: bool = False) -> int | None:
    """A whole number (not a bool), at least `minimum`; None where `optional`."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise EraseTypeError(f"{name}: expected a whole number{' or None' if optional else ''}, got {type_name(value)}")
    if minimum is not None and value < minimum:
        raise EraseValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise EraseTypeError(f"{name}: expected True or False, got {type_name(value)}")
    return value


def choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise EraseTypeError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {type_name(value)}")
    if value not in choices:
        raise EraseValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r:.60}")
    return value


def instance(name: str, value: Any, cls: type | tuple[type, ...], expected: str) -> Any:
    if not isinstance(value, cls):
        raise EraseTypeError(f"{name}: expected {expected}, got {type_name(value)}")
    return value
