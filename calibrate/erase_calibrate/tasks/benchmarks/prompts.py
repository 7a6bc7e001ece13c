"""Text prompts per benchmark, with the answer-format suffixes used for Qwen models.

Each builder takes an `Item` (its `prompt` is ignored) and returns the text
that follows the image in the user turn. The wording of every suffix and hint
is the one the lmms-eval tasks use for Qwen models, so scores stay comparable.
"""

from __future__ import annotations

from ..items import Item
from .options import format_options, parse_options

SHORT_ANSWER = "Answer the question using a single word or phrase."
SINGLE_WORD = "Answer the question with a single word."
OPTION_LETTER = "Answer with the option's letter from the given choices directly."
OPTIONS_HEADER = "There are several options:"

# MathVista: one answer-format hint per answer type; floats name their precision.
MATHVISTA_HINTS = {
    "multi_choice": OPTION_LETTER,
    "integer": "Answer the question using a single integer number.",
    "float": "Answer the question using a single floating-point number{places}.",
    "list": "Answer the question using a Python list.",
}
_PLACES = {1: " with one decimal place", 2: " with two decimal places", 3: " with three decimal places"}


def short_answer_prompt(item: Item) -> str:
    """DocVQA, InfoVQA, TextVQA: question, then the single-word-or-phrase instruction."""
    return f"{item.question.strip()}\n{SHORT_ANSWER}"


def single_word_prompt(item: Item) -> str:
    """ChartQA: question, then the single-word instruction."""
    return f"{item.question.strip()}\n{SINGLE_WORD}"


def plain_prompt(item: Item) -> str:
    """OCRBench, RealWorldQA: the question as the dataset writes it (it carries its own instructions)."""
    return item.question.strip()


def option_letter_prompt(item: Item) -> str:
    """MMStar: the question (options already inside), then the option-letter instruction."""
    return f"{item.question.strip()}\n{OPTION_LETTER}"


def mmbench_prompt(item: Item) -> str:
    """MMBench: hint (when present), question, "There are several options:", "A. ..." lines, instruction."""
    parts = [item.hint.strip()] if item.hint and item.hint.strip() else []
    parts += [item.question.strip(), OPTIONS_HEADER, format_options(item.options), OPTION_LETTER]
    return "\n".join(parts)


def vstar_prompt(item: Item) -> str:
    """V*Bench: the question stem, its "(A) ..." options rewritten as "A. ..." lines, instruction.

    An instruction already at the end of the dataset text is dropped, so it appears once.
    """
    stem = parse_options(item.question).stem if item.options else item.question.strip()
    parts = [stem]
    if item.options:
        parts.append(format_options(item.options))
    parts.append(OPTION_LETTER)
    return "\n".join(parts)


def mathvista_prompt(item: Item) -> str:
    """MathVista: question (+ " (Unit: u)"), "A. ..." choices when any, then the hint for the answer type."""
    question = item.question.strip()
    if item.unit:
        question += f" (Unit: {item.unit})"
    parts = [question]
    if item.options:
        parts.append(format_options(item.options))
    hint = mathvista_hint(item.question_type, item.answer_type, item.precision)
    if hint:
        parts.append(hint)
    return "\n".join(parts)


def mathvista_hint(question_type: str | None, answer_type: str | None, precision: int | None) -> str:
    """The answer-format hint for a MathVista question ("" for a type without one)."""
    if question_type == "multi_choice":
        return MATHVISTA_HINTS["multi_choice"]
    if answer_type == "float":
        places = _PLACES.get(precision, "" if precision is None else f" with {precision} decimal places")
        return MATHVISTA_HINTS["float"].format(places=places)
    return MATHVISTA_HINTS.get(answer_type or "", "")
