"""The EvalAI answer normalisation used for VQA-style accuracy (TextVQA).

This is the answer processing of the VQA evaluation (``vqaEval.py``, the
``EvalAIAnswerProcessor`` used by EvalAI and the TextVQA evaluation), applied to
the prediction and to every reference answer alike, in this order:

1. lowercase; drop "," and "?"; split off a possessive "'s" (-> " 's");
   newlines and tabs become spaces, the ends are stripped;
2. punctuation: each of ; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? ! is deleted when
   it touches a space in the input (or the input has a digit-comma-digit group),
   otherwise replaced by a space; then a period is deleted unless a digit follows
   it ("3.5" and ".5" survive, "st." and "5." do not), at most 32 of them (the
   reference passes ``re.UNICODE``, which is 32, where ``re.sub`` takes its count);
3. words: number words zero..ten (and "none") become digits, the articles
   a / an / the are dropped, and the spellings in EvalAI's contraction table
   become the contraction ("dont" -> "don't"); nothing else is rewritten, so
   "shell", "well" and "its" stay as they are.
"""

from __future__ import annotations

import re

_PUNCTUATION = tuple(";/[]\"{}()=+\\_-><@`,?!")
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
_PERIOD_LIMIT = 32  # the reference's count argument is re.UNICODE (== 32)

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

# EvalAI's contraction table (the VQA evaluation's `contractions` dict), one
# line per written form followed by the spellings that map to it. It is data of
# the standard, kept as published: the keys with a capital "I" never match (the
# words are lowercased first), and "somebody'd" maps to "somebodyd".
# Ordinary words such as "shell", "well", "ill" and "its" are not keys.
_CONTRACTION_LINES = """
ain't aint
aren't arent
can't cant
could've couldve
couldn't couldnt
couldn't've couldn'tve couldnt've
didn't didnt
doesn't doesnt
don't dont
hadn't hadnt
hadn't've hadnt've hadn'tve
hasn't hasnt
haven't havent
he'd hed
he'd've hed've he'dve
he's hes
how'd howd
how'll howll
how's hows
I'd've Id've I'dve
I'm Im
I've Ive
isn't isnt
it'd itd
it'd've itd've it'dve
it'll itll
let's let's
ma'am maam
mightn't mightnt
mightn't've mightnt've mightn'tve
might've mightve
mustn't mustnt
must've mustve
needn't neednt
not've notve
o'clock oclock
oughtn't oughtnt
'ow's'at ow's'at 'ows'at 'ow'sat
shan't shant
she'd've shed've she'dve
she's she's
should've shouldve
shouldn't shouldnt
shouldn't've shouldnt've shouldn'tve
somebodyd somebody'd
somebody'd've somebodyd've somebody'dve
somebody'll somebodyll
somebody's somebodys
someone'd someoned
someone'd've someoned've someone'dve
someone'll someonell
someone's someones
something'd somethingd
something'd've somethingd've something'dve
something'll somethingll
that's thats
there'd thered
there'd've thered've there'dve
there're therere
there's theres
they'd theyd
they'd've theyd've they'dve
they'll theyll
they're theyre
they've theyve
'twas twas
wasn't wasnt
we'd've wed've we'dve
we've weve
weren't werent
what'll whatll
what're whatre
what's whats
what've whatve
when's whens
where'd whered
where's wheres
where've whereve
who'd whod
who'd've whod've who'dve
who'll wholl
who's whos
who've whove
why'll whyll
why're whyre
why's whys
won't wont
would've wouldve
wouldn't wouldnt
wouldn't've wouldnt've wouldn'tve
y'all yall
y'all'll yall'll y'allll
y'all'd've yall'd've y'alld've y'all'dve
you'd youd
you'd've youd've you'dve
you'll youll
you're youre
you've youve
"""


def _contraction_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for line in _CONTRACTION_LINES.strip().splitlines():
        written, *spellings = line.split()
        for spelling in spellings:
            table[spelling] = written
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
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_PERIOD_LIMIT)


def _normalize_words(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = _NUMBER_WORDS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTION_TABLE.get(word, word))
    return " ".join(words)
