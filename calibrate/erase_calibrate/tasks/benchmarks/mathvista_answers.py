"""MathVista answers read without an LLM: direct use of the prediction only.

The official MathVista evaluation first has GPT extract an answer from the
response, then normalises that extraction by the answer type and compares it,
as text with the ends stripped, with the dataset's answer as it is stored.
Here the extraction step is the prediction itself, lightly cleaned: a leading
"Answer:" / "The answer is", a trailing period and the item's unit ("12 cm"
when the unit is "cm") are removed, and thousands separators in a number
("1,200") are dropped. Nothing else is searched for, so a long reasoning text
without such a cue scores 0. The normalisation then follows the official
``normalize_extracted_answer`` rules:

- multiple choice: the chosen choice's text (by letter or by text);
- integer: ``str(int(float(x)))``, so a decimal is truncated ("9.7" -> "9",
  "-2.5" -> "-2");
- float: ``str(round(float(x), precision))``, Python's rounding of the binary
  float ("1.45" at one place gives "1.4", "2.675" at two gives "2.67"), and
  the text must equal the stored answer ("1.5" does not equal "1.50");
- list: a Python-style list, compared element-wise (numbers by value);
- text (free form): case-sensitive equality with the stored answer.
"""

from __future__ import annotations

import ast
import re
from typing import Sequence

from .multiple_choice import extract_choice
from .options import letters_for

_CUE = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*", re.IGNORECASE)
_GROUPED = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


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

    Multiple choice gives the chosen choice's text; integers give "12" (also
    for "12.9"); floats ``str(round(value, precision))`` ("1.5" at two places);
    lists "[1, 2]"; free text the cleaned prediction.
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
    return text or None


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
    """1.0 when the prediction, read as `mathvista_extract` reads it, equals the answer.

    Integer, float and text answers are compared as text with the stored
    answer (as the official ``safe_equal`` does), so only the prediction is
    normalised; a float answer `precision` of None falls back to the stored
    answer's number of decimal places.
    """
    if answer_type == "float" and precision is None:
        precision = _decimal_places(answer.strip())
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
    if answer_type == "list":
        want = _as_list(answer.strip())
        return 1.0 if want is not None and got == _format_list(want) else 0.0
    # The official comparison: normalised prediction against the stored answer, as text.
    return 1.0 if got.strip() == answer.strip() else 0.0


def _clean(prediction: str, unit: str | None) -> str:
    text = prediction.strip()
    text = _CUE.sub("", text).strip()
    text = text.rstrip(".").strip()
    if unit and text.endswith(unit.strip()) and len(text) > len(unit.strip()):
        text = text[: -len(unit.strip())].strip()
    return text


def _as_integer(text: str) -> str | None:
    value = _number(text)
    try:
        return None if value is None else str(int(value))  # int() truncates, as the official rule
    except (OverflowError, ValueError):  # inf, nan
        return None


def _as_float(text: str, precision: int | None) -> str | None:
    value = _number(text)
    if value is None:
        return None
    places = precision if precision is not None else _decimal_places(text)
    return str(round(value, places))


def _number(text: str) -> float | None:
    # Thousands separators go before Python's float() reads it, as the extraction would.
    if _GROUPED.match(text):
        text = text.replace(",", "")
    try:
        return float(text)
    except ValueError:
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
