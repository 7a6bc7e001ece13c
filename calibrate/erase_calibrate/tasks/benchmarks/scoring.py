"""Answer-matching metrics, one function per rule of BENCHMARKS.md.

Every function takes the model's raw answer text and the reference(s) and
returns a score in [0, 1] for one question. Multiple choice lives in
`multiple_choice`, MathVista in `mathvista_answers`.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .vqa_normalize import normalize_vqa_answer

ANLS_THRESHOLD = 0.5
RELAXED_TOLERANCE = 0.05


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def anls(prediction: str, references: Iterable[str], threshold: float = ANLS_THRESHOLD) -> float:
    """Average Normalised Levenshtein Similarity of one answer (DocVQA, InfoVQA).

    As the DocVQA / InfographicVQA evaluation script computes it: the edit
    distance is taken between the cleaned strings (ends stripped, lowercased,
    runs of whitespace collapsed to one space), but it is divided by the longer
    of the two *raw* strings (their length as given, after uppercasing, which
    is what the script measures). The smallest normalised distance over the
    references wins, the score is 1 minus it, and a score below `threshold`
    counts as 0. Two empty strings are a perfect match; no references score 0.
    """
    pred = _collapse(prediction.strip().lower())
    values = []
    for ref in references:
        raw = str(ref)
        longest = max(len(raw.upper()), len(prediction.upper()))
        values.append(0.0 if longest == 0 else levenshtein(pred, _collapse(raw.strip().lower())) / longest)
    if not values:
        return 0.0
    score = 1.0 - min(values)
    return score if score >= threshold else 0.0


def relaxed_accuracy(prediction: str, target: str, tolerance: float = RELAXED_TOLERANCE) -> float:
    """ChartQA's relaxed accuracy.

    When both sides read as numbers, the prediction may be off by `tolerance`
    relative to the target (a trailing "%" divides by 100 on either side, so
    "45%" equals "0.45"); a target of 0 needs an exact 0. Otherwise the two
    must match exactly, ignoring case and surrounding whitespace.
    """
    pred, gold = prediction.strip(), str(target).strip()
    p, g = _as_number(pred), _as_number(gold)
    if p is not None and g is not None:
        if g == 0:
            return 1.0 if p == 0 else 0.0
        return 1.0 if abs(p - g) / abs(g) <= tolerance else 0.0
    return 1.0 if pred.lower() == gold.lower() else 0.0


def fold_fullwidth(text: str) -> str:
    """Full-width ASCII forms (U+FF01..U+FF5E) and the ideographic space to plain ASCII."""
    return "".join(
        chr(ord(ch) - 0xFEE0) if 0xFF01 <= ord(ch) <= 0xFF5E else (" " if ch == "\u3000" else ch) for ch in text
    )


def ocrbench_match(prediction: str, references: Sequence[str] | str, *, handwritten_math: bool = False) -> float:
    """OCRBench: 1.0 when any reference occurs inside the prediction.

    Full-width characters are folded on both sides and newlines become spaces.
    Normally both sides are lowercased and stripped; for the handwritten
    mathematical expressions (HME100k) all spaces are removed and case is kept.
    """
    refs = [references] if isinstance(references, str) else list(references)
    pred = fold_fullwidth(prediction).strip().replace("\n", " ")
    pred = pred.replace(" ", "") if handwritten_math else pred.lower()
    for ref in refs:
        gold = fold_fullwidth(str(ref)).strip().replace("\n", " ")
        gold = gold.replace(" ", "") if handwritten_math else gold.lower()
        if gold in pred:
            return 1.0
    return 0.0


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """VQA accuracy (TextVQA) after the EvalAI normalisation of all answers.

    For each of the n reference answers, leave it out and score
    min(1, matches among the other n - 1 / 3); the result is the mean over the
    n subsets. With 10 answers, 4 or more matches give 1.0, 3 give 0.9, 2 give
    0.6, 1 gives 0.3.
    """
    if not answers:
        return 0.0
    pred = normalize_vqa_answer(prediction)
    gold = [normalize_vqa_answer(str(a)) for a in answers]
    total = 0.0
    for i in range(len(gold)):
        matches = sum(1 for j, g in enumerate(gold) if j != i and g == pred)
        total += min(1.0, matches / 3.0)
    return total / len(gold)


def exact_match(prediction: str, references: Iterable[str]) -> float:
    """RealWorldQA's open-ended rule: equality after light cleaning, nothing more.

    The prediction is lowercased, its ends stripped and trailing periods removed;
    each reference is stripped and lowercased; they must then be equal. Other
    punctuation counts ("3,5" is not "3.5", "3.5" is not "35").
    """
    pred = prediction.lower().strip().rstrip(".")
    return 1.0 if any(pred == str(ref).strip().lower() for ref in references) else 0.0


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _as_number(text: str) -> float | None:
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1].strip(), 0.01
    try:
        value = float(text)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):  # nan, inf are not answers
        return None
    return value * scale
