"""Multiple-choice options written inside question text: reading and writing them.

Datasets put options into the question in several styles, all read here:

    "(A) red\\n(B) blue"                       V*Bench
    "A. 1\\nB. 2\\nPlease answer directly ..."  RealWorldQA
    "Options: A: 8, B: 4, C: 6, D: 2"          MMStar

Options are found as a run of consecutive letter markers A, B, C, ...; the last
run that starts at A and has at least two options wins, so a stray "A." in the
question stem is not mistaken for an option. The last option ends at the end of
its line, so an instruction on the following line is not part of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

LETTERS = "ABCDEFGHIJ"

# "(A)" or "A." / "A:" / "A)", at the start of a line or after a space, comma or
# semicolon, and followed by whitespace or the end of the text.
_MARKER = re.compile(r"(?:^|(?<=[\s,;]))(?:\(([A-J])\)|([A-J])[.:)])(?=\s|$)", re.MULTILINE)
_LABEL = re.compile(r"\s*(?:options|choices)\s*:?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedOptions:
    """A question split into its stem, its options and whatever follows the options."""

    stem: str
    options: dict[str, str] = field(default_factory=dict)
    tail: str = ""


def parse_options(text: str) -> ParsedOptions:
    """Split `text` into stem, options ({"A": "red", ...}) and trailing text.

    Without at least two options the whole text is the stem.
    """
    markers = [(m.start(), m.end(), m.group(1) or m.group(2)) for m in _MARKER.finditer(text)]
    best: list[tuple[int, int, str]] = []
    for i, (_, _, letter) in enumerate(markers):
        if letter != "A":
            continue
        chain = [markers[i]]
        for marker in markers[i + 1 :]:
            if marker[2] == LETTERS[len(chain)]:
                chain.append(marker)
        if len(chain) >= 2:
            best = chain  # the last run starting at A wins
    if not best:
        return ParsedOptions(stem=text.strip())

    options: dict[str, str] = {}
    tail = ""
    for k, (_, end, letter) in enumerate(best):
        if k + 1 < len(best):
            body = text[end : best[k + 1][0]]
        else:
            rest = text[end:]
            newline = rest.find("\n", len(rest) - len(rest.lstrip(" \t")))
            body, tail = (rest, "") if newline < 0 else (rest[:newline], rest[newline + 1 :])
        options[letter] = body.strip().rstrip(",;").strip()
    stem = _LABEL.sub("", text[: best[0][0]]).strip()
    return ParsedOptions(stem=stem, options=options, tail=tail.strip())


def format_options(options: Mapping[str, str]) -> str:
    """One "A. text" line per option, in letter order."""
    return "\n".join(f"{letter}. {options[letter]}" for letter in sorted(options))


def letters_for(choices: Sequence[str]) -> dict[str, str]:
    """Give a list of choices the letters A, B, C, ... in order."""
    if len(choices) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} choices are supported, got {len(choices)}")
    return {LETTERS[i]: str(choice) for i, choice in enumerate(choices)}
