"""Turning one dataset row into an `Item`, following a benchmark's column mapping."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Mapping

from PIL import Image

from erase import EraseError, ImageError
from erase.limits import open_regular

from ..items import Item
from .options import letters_for, parse_options
from .registry import Benchmark


def row_to_item(benchmark: Benchmark, row: Mapping[str, Any], item_id: str, where: str) -> Item:
    """Build the `Item` for one row. `where` names the source in error messages."""
    c = benchmark.columns
    question = text_value(row.get(c.question)) or ""
    if c.option_columns:
        options = {k: text_value(row[k]) for k in c.option_columns if k in row and is_present(row[k])}
    elif c.choices and is_present(row.get(c.choices)):
        options = letters_for([str(x) for x in row[c.choices]])
    elif c.options_in_question:
        options = parse_options(question).options
    else:
        options = {}
    draft = Item(
        benchmark=benchmark.name,
        id=item_id,
        question=question,
        prompt="",
        references=answer_values(row.get(c.answer)),
        image_data=image_value(row.get(c.image), f"{where}: {benchmark.name} item {item_id}"),
        options={k: v for k, v in options.items() if v is not None},
        hint=text_value(row.get(c.hint)) if c.hint else None,
        answer_type=text_value(row.get(c.answer_type)) if c.answer_type else None,
        precision=_precision(row.get(c.precision)) if c.precision else None,
        question_type=text_value(row.get(c.question_type)) if c.question_type else None,
        unit=text_value(row.get(c.unit)) if c.unit else None,
        metadata={k: row[k] for k in c.extra if k in row},
    )
    return replace(draft, prompt=benchmark.build_prompt(draft))


def is_present(value: Any) -> bool:
    """False for the ways datasets write "no value": None, NaN, "", "nan", an empty list."""
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, str) and value.strip().lower() in ("", "nan"):
        return False
    if isinstance(value, (list, tuple)) and not value:
        return False
    return True


def text_value(value: Any) -> str | None:
    """A present value as text, else None."""
    return str(value) if is_present(value) else None


def answer_values(value: Any) -> tuple[str, ...]:
    """Reference answers from a string or a list column, as the dataset stores them.

    Answer strings are kept verbatim, "", "nan" and "NaN" included: the
    standard scripts read the answers as the strings they are (an annotator's
    "nan" is an answer, and ANLS divides by the raw length). Only a value that
    is not there at all (None, a float NaN) is left out.
    """
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if not _missing(v))
    return () if _missing(value) else (str(value),)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def image_value(value: Any, what: str) -> bytes | Image.Image:
    """The encoded bytes (or PIL image) of an image cell in any of the forms datasets use."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
    if isinstance(value, str) and value:
        try:
            with open_regular(value, "image", ImageError) as fh:  # never blocks on a FIFO
                return fh.read()
        except ImageError as exc:
            raise EraseError(f"{what}: {exc}") from None
        except OSError as exc:
            raise EraseError(f"{what}: cannot read image file {value}: {exc.strerror or exc}") from None
    raise EraseError(f"{what}: no image in the row")


def _precision(value: Any) -> int | None:
    if not is_present(value):
        return None
    try:
        return int(round(float(value)))
    except (TypeError, ValueError):
        return None
