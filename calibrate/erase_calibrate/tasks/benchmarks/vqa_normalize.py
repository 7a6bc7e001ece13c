"""The EvalAI answer normalisation used for VQA-style accuracy (TextVQA).

Applied to the prediction and to every reference answer alike, in this order:

1. lowercase; drop "," and "?"; split off a possessive "'s" (-> " 's");
   newlines and tabs become spaces;
2. punctuation: each of ; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? ! is deleted when
   it touches a space in the input (or the input has a digit-comma-digit group),
   otherwise replaced by a space; a period is deleted unless a digit follows it
   (so "3.5" survives and "st." does not);
3. words: number words zero..ten (and "none") become digits, the articles
   a / an / the are dropped, and contractions written without their apostrophe
   ("dont", "cant", "youre") are restored ("don't", "can't", "you're").
"""

from __future__ import annotations

import itertools
import re

_PUNCTUATION = tuple(";/[]\"{}()=+\\_-><@`,?!")
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")

_NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})

# Contractions in their written form; every spelling that lacks one or more of
# the apostrophes maps back to it. Forms with the pronoun "I" are left out on
# purpose: the reference table keys them capitalised, so after lowercasing they
# never apply ("im" stays "im").
_CONTRACTIONS = """
ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't
haven't he'd he'd've he's he'll how'd how'll how's isn't it'd it'd've it'll it's let's ma'am mightn't
mightn't've might've mustn't must've needn't not've o'clock oughtn't 'ow's'at shan't she'd she'd've
she'll she's should've shouldn't shouldn't've somebody'd somebody'd've somebody'll somebody's
someone'd someone'd've someone'll someone's something'd something'd've something'll that's
there'd there'd've there're there's they'd they'd've they'll they're they've 'twas wasn't
we'd we'd've we'll we're we've weren't what'll what're what's what've when's where'd where's where've
who'd who'd've who'll who're who's who've why'll why're why's won't would've wouldn't
wouldn't've y'all y'all'll y'all'd've you'd you'd've you'll you're you've
""".split()
# Apostrophe-less spellings that are ordinary words and must stay as they are.
_REAL_WORDS = frozenset({"its", "well", "were", "wed", "shed", "hell", "ill", "id", "cant", "wont", "lets", "whore"})
_KEEP_ANYWAY = frozenset({"cant", "wont", "lets"})  # the reference maps these despite being words


def _contraction_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for written in _CONTRACTIONS:
        spots = [i for i, ch in enumerate(written) if ch == "'"]
        for r in range(1, len(spots) + 1):
            for drop in itertools.combinations(spots, r):
                variant = "".join(ch for i, ch in enumerate(written) if i not in drop)
                if variant in _REAL_WORDS and variant not in _KEEP_ANYWAY:
                    continue
                table.setdefault(variant, written)
    return table


_CONTRACTION_TABLE = _contraction_table()


def normalize_vqa_answer(text: str) -> str:
    """Normalise one answer the EvalAI way (see the module docstring)."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's")
    text = text.replace("\n", " ").replace("\t", " ").strip()
    text = _strip_punctuation(text)
    return _normalize_words(text)


def _strip_punctuation(text: str) -> str:
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for p in _PUNCTUATION:
        if delete_all or (p + " ") in text or (" " + p) in text:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out)


def _normalize_words(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = _NUMBER_WORDS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTION_TABLE.get(word, word))
    return " ".join(words)
