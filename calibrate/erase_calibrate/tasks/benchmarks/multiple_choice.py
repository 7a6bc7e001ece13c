"""Reading the chosen option letter out of a model's answer, without a judge model.

`extract_choice` tries, in order, and returns the first letter found that is
one of the item's options:

1. a bare letter: "B", "(B)", "B.", "B)", "B:" (also lowercase "b" when it is
   the whole answer);
2. a letter that opens the answer: "B. 42", "(B) red", "B: red";
3. a letter after a cue word: "Answer: B", "The answer is (B).",
   "the correct option is B";
4. the option's text: the answer equals an option's text, or contains exactly
   one option's text as whole words (a text that is part of a longer matching
   option's text does not count: "dark red" beats "red");
5. a single parenthesised letter anywhere: "... so (C)";
6. a letter that closes the answer: "I would pick C."

Full-width forms are read as ASCII first, so "（B）", "B．" and "Ｂ" are B.
Nothing found gives None, which scores as wrong.
"""

from __future__ import annotations

import re
from typing import Mapping

from .options import LETTERS
from .scoring import fold_fullwidth

_QUOTES = "\"'`*_ \t\n"
_BARE = re.compile(r"^\(?\s*([A-Ja-j])\s*\)?\s*[.:)]?$")
_LEADING = re.compile(r"^\(?([A-J])(?:\)|[.:)])(?:\s|$)")
_CUE = re.compile(
    r"\b(?:answer|option|choice)(?:\s+(?:is|would\s+be|should\s+be))?\s*(?:option\s*)?[:\-]?\s*\(?([A-J])\b(?!['\w])",
    re.IGNORECASE,
)
_PAREN = re.compile(r"\(([A-J])\)")
_TRAILING = re.compile(r"(?:^|[\s(])([A-J])\)?[\s.!]*$")
_WORDS = re.compile(r"[^\w%.\-]+")


def extract_choice(prediction: str, options: Mapping[str, str] | None = None) -> str | None:
    """The option letter a prediction picks, or None.

    `options` maps letters to option texts; without it the letters A-E are
    accepted and option texts cannot be matched.
    """
    valid = set(options) if options else set(LETTERS[:5])
    # Full-width forms ("（B）", "B．", "Ｂ") read as their ASCII letters and marks.
    text = fold_fullwidth(prediction).strip().strip(_QUOTES).strip()
    if not text:
        return None

    m = _BARE.match(text)
    if m and m.group(1).upper() in valid:
        return m.group(1).upper()
    m = _LEADING.match(text)
    if m and m.group(1) in valid:
        return m.group(1)
    for m in _CUE.finditer(text):
        letter = m.group(1).upper()
        if letter in valid and (m.group(1).isupper() or _cue_letter_stands_alone(text, m)):
            return letter
    if options:
        letter = _match_option_text(text, options)
        if letter:
            return letter
    found = {x for x in _PAREN.findall(text) if x in valid}
    if len(found) == 1:
        return found.pop()
    m = _TRAILING.search(text)
    if m and m.group(1) in valid:
        return m.group(1)
    return None


def multiple_choice_score(prediction: str, answer: str, options: Mapping[str, str] | None = None) -> float:
    """1.0 when the extracted letter equals the answer key ("B", "(B)" and "B." keys all read as B)."""
    key = extract_choice(answer, None) or answer.strip().upper()
    return 1.0 if extract_choice(prediction, options) == key else 0.0


def _cue_letter_stands_alone(text: str, m: re.Match[str]) -> bool:
    # A lowercase letter after a cue ("the answer is a dog") is a word, not an option,
    # unless it is the last thing in the answer ("answer: b").
    return not text[m.end(1) :].strip(" .)!")


def _words(text: str) -> str:
    # Lowercase words; "." and "-" survive inside a word ("3.5", "x-ray") but not at its ends.
    return " ".join(w.strip(".-") for w in _WORDS.sub(" ", text.lower()).split() if w.strip(".-"))


def _match_option_text(text: str, options: Mapping[str, str]) -> str | None:
    said = _words(text)
    texts = {letter: _words(body) for letter, body in options.items() if _words(body)}
    exact = [letter for letter, body in texts.items() if body == said]
    if len(exact) == 1:
        return exact[0]
    padded = f" {said} "
    hits = {letter: body for letter, body in texts.items() if f" {body} " in padded}
    # Drop a hit whose text is part of another hit's text ("red" inside "dark red").
    kept = [
        letter
        for letter, body in hits.items()
        if not any(other != letter and f" {body} " in f" {hits[other]} " and body != hits[other] for other in hits)
    ]
    return kept[0] if len(kept) == 1 else None
