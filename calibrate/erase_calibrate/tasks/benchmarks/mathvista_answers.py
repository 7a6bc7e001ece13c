"""MathVista answers read without an LLM: direct use of the prediction only.

The prediction counts when it is one of the choices (or names one by its
letter), or when it parses as the required type:

- integer: "12", "+12", "1,200", "12.0" (an integral decimal);
- float: any decimal number, rounded half-up to the item's precision
  (decimal places) and compared with the answer rounded the same way;
- list: a Python-style list of numbers or strings, "[1, 2.5]", compared
  element-wise (numbers by value);
- text (free form): case-insensitive, whitespace-collapsed equality.

A trailing period, the item's unit ("12 cm" when the unit is "cm") and a
leading "Answer:" / "The answer is" are tolerated; nothing else is searched
for, so a long reasoning text without such a cue scores 0.
"""

from __future__ import annotations

import ast
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Sequence

from .multiple_choice import extract_choice
from .options import letters_for

_CUE = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*", re.IGNORECASE)
_INTEGER = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+$|^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?$")


def mathvista_extract(
    prediction: str,
    *,
    question_type: str | None,
    answer_type: str | None,
    precision: int | None = None,
    choices: Sequence[str] | None = None,
    unit: str | None = None,
) -> str | None:
    """The answer the prediction gives, in the dataset's answer format, or None.

    Multiple choice gives the chosen choice's text; integers give "12"; floats
    the value rounded to `precision` places ("1.50"); lists "[1, 2]".
    """
    text = _clean(prediction, unit)
    if question_type == "multi_choice" or (choices and answer_type == "text"):
        options = letters_for(list(choices or []))
        letter = extract_choice(text, options) if options else None
        return options[letter] if letter else None
    if answer_type == "integer":
        return _as_integer(text)
    if answer_type == "float":
        return _as_float(text, precision)
    if answer_type == "list":
        parsed = _as_list(text)
        return None if parsed is None else _format_list(parsed)
    return " ".join(text.split()) or None


def mathvista_score(
    prediction: str,
    answer: str,
    *,
    question_type: str | None,
    answer_type: str | None,
    precision: int | None = None,
    choices: Sequence[str] | None = None,
    unit: str | None = None,
) -> float:
    """1.0 when the prediction, read as `mathvista_extract` reads it, equals the answer."""
    got = mathvista_extract(
        prediction,
        question_type=question_type,
        answer_type=answer_type,
        precision=precision,
        choices=choices,
        unit=unit,
    )
    if got is None:
        return 0.0
    if question_type == "multi_choice" or (choices and answer_type == "text"):
        return 1.0 if got.strip() == answer.strip() else 0.0
    if answer_type == "integer":
        return 1.0 if got == _as_integer(answer.strip()) else 0.0
    if answer_type == "float":
        places = precision if precision is not None else _decimal_places(answer.strip())
        return 1.0 if got == _as_float(answer.strip(), places) else 0.0
    if answer_type == "list":
        want = _as_list(answer.strip())
        return 1.0 if want is not None and got == _format_list(want) else 0.0
    return 1.0 if got.lower() == " ".join(answer.split()).lower() else 0.0


def _clean(prediction: str, unit: str | None) -> str:
    text = prediction.strip()
    text = _CUE.sub("", text).strip()
    text = text.rstrip(".").strip()
    if unit and text.endswith(unit.strip()) and len(text) > len(unit.strip()):
        text = text[: -len(unit.strip())].strip()
    return text


def _as_integer(text: str) -> str | None:
    if _INTEGER.match(text):
        return str(int(text.replace(",", "")))
    value = _decimal(text)
    if value is not None and value == value.to_integral_value():
        return str(int(value))
    return None


def _as_float(text: str, precision: int | None) -> str | None:
    value = _decimal(text)
    if value is None:
        return None
    places = precision if precision is not None else _decimal_places(text)
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _decimal(text: str) -> Decimal | None:
    if not text or not _DECIMAL.match(text) or not any(ch.isdigit() for ch in text):
        return None
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def _decimal_places(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def _as_list(text: str) -> list | None:
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, list) else None


def _format_list(values: list) -> str:
    parts = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            parts.append(repr(str(v).strip()))
        elif float(v).is_integer():
            parts.append(str(int(v)))
        else:
            parts.append(repr(float(v)))
    return "[" + ", ".join(parts) + "]"
