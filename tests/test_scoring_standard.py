"""The scoring rules as the field's standard evaluations define them (issue 16, "Scoring as the field scores").

Each case is worked out by hand from the rule its docstring names; none is
produced by running another project's code.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from PIL import Image

from erase import EraseError
from erase_calibrate.tasks.benchmarks import get_benchmark, score
from erase_calibrate.tasks.benchmarks.aggregates import ItemResult, aggregate, mmbench_group
from erase_calibrate.tasks.benchmarks.mathvista_answers import mathvista_score
from erase_calibrate.tasks.benchmarks.multiple_choice import extract_choice, multiple_choice_score
from erase_calibrate.tasks.benchmarks.rows import answer_values, row_to_item
from erase_calibrate.tasks.benchmarks.scoring import anls, exact_match, vqa_accuracy
from erase_calibrate.tasks.benchmarks.vqa_normalize import normalize_vqa_answer

OPTS = {"A": "red", "B": "dark red", "C": "blue", "D": "green"}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


# --- MMBench circular evaluation --------------------------------------------------------


def test_mmbench_counts_a_question_only_when_every_shuffled_copy_is_right():
    """MMBench (Liu et al. 2023, "CircularEval"; VLMEvalKit's MCQ circular evaluation):
    each question is asked once per rotation of its options, the copies carry the
    original index plus k * 1e6, and the question scores 1 only if all copies are answered
    right. Accuracy is over questions, not rows."""
    rows = [
        {"id": "5", "score": 1.0},
        {"id": "1000005", "score": 1.0},
        {"id": "2000005", "score": 0.0},  # one rotation wrong sinks question 5
        {"id": "3000005", "score": 1.0},
        {"id": "7", "score": 1.0},
        {"id": "1000007", "score": 1.0},
    ]
    assert aggregate("mmbench", rows) == pytest.approx(0.5)  # question 7 right, 5 wrong
    assert sum(r["score"] for r in rows) / len(rows) == pytest.approx(5 / 6)  # what a row mean would say
    assert mmbench_group("3000005") == mmbench_group("5") == "5"


def test_mmbench_with_one_copy_per_question_is_plain_accuracy():
    """Circular evaluation on data holding a single copy of each question: every group has
    one member, which must be right, so the total equals the per-row accuracy."""
    rows = [ItemResult("1", 1.0), ItemResult("2", 0.0), ItemResult("3", 1.0)]
    assert aggregate("MMBench (en dev)", rows) == pytest.approx(2 / 3)


def test_mmbench_copies_without_their_original_in_a_sample_still_form_a_group():
    """A sample may draw rotation 2000009 but not 9; the copies present decide the group."""
    rows = [ItemResult("2000009", 1.0), ItemResult("3000009", 1.0), ItemResult("4", 0.0)]
    assert aggregate("mmbench", rows) == pytest.approx(0.5)


# --- MMStar category mean ---------------------------------------------------------------


def test_mmstar_total_is_the_mean_of_l2_category_means():
    """MMStar (Chen et al. 2024) reports per-axis scores; the standard total (lmms-eval's
    mmstar aggregation) averages the scores within each l2_category, then averages those
    category means with equal weight."""
    rows = [ItemResult(str(i), 1.0, "object counting") for i in range(4)]
    rows.append(ItemResult("9", 0.0, "geography & earth science"))
    assert aggregate("mmstar", rows) == pytest.approx(0.5)
    assert sum(r.score for r in rows) / len(rows) == pytest.approx(0.8)  # a per-item mean would differ


def test_item_result_takes_the_category_from_the_item():
    item = SimpleNamespace(id=12, metadata={"l2_category": "object counting", "category": "coarse perception"})
    r = ItemResult.from_item(item, 1)
    assert r == ItemResult("12", 1.0, "object counting")


def test_other_benchmarks_average_their_items_and_empty_results_are_an_error():
    """ChartQA, TextVQA, DocVQA and the rest report the mean of their per-item scores."""
    three = [ItemResult("a", 1.0), ItemResult("b", 0.0), ItemResult("c", 0.0)]
    assert aggregate("chartqa", three) == pytest.approx(1 / 3)
    assert aggregate("docvqa", [{"id": "a", "score": 0.9}, {"id": "b", "score": 0.6}]) == pytest.approx(0.75)
    with pytest.raises(EraseError, match="no item results"):
        aggregate("mmstar", [])
    with pytest.raises(EraseError, match="unknown benchmark"):
        aggregate("nope", [ItemResult("a", 1.0)])


# --- MathVista ---------------------------------------------------------------------------


def _mv(prediction, answer, answer_type, precision=None):
    return mathvista_score(prediction, answer, question_type="free_form", answer_type=answer_type, precision=precision)


@pytest.mark.parametrize(
    "prediction, answer, precision, expected",
    [
        ("1.45", "1.4", 1, 1.0),  # the float 1.45 lies below 1.45, so round() gives 1.4
        ("1.45", "1.5", 1, 0.0),  # half-up decimal rounding would have said 1.5
        ("2.675", "2.67", 2, 1.0),
        ("1.50", "1.5", 2, 1.0),  # str(1.5) is "1.5"
        ("1.5", "1.50", 2, 0.0),  # the stored answer is not re-rounded
        ("3", "3.0", 1, 1.0),  # str(round(3.0, 1)) is "3.0"
    ],
)
def test_mathvista_float_answers_use_python_round_and_str(prediction, answer, precision, expected):
    """MathVista's official evaluation (calculate_score.py, normalize_extracted_answer): a
    float extraction becomes str(round(float(x), precision)), and safe_equal compares that
    text, stripped, with the stored answer as given."""
    assert _mv(prediction, answer, "float", precision) == expected


@pytest.mark.parametrize(
    "prediction, answer, expected",
    [
        ("9.7", "9", 1.0),
        ("9.7", "10", 0.0),
        ("-2.5", "-2", 1.0),
        ("12.0", "12", 1.0),
        ("1,200", "1200", 1.0),
        ("nine", "9", 0.0),
    ],
)
def test_mathvista_integer_answers_truncate(prediction, answer, expected):
    """MathVista's official normalisation of an integer answer is str(int(float(x))):
    int() truncates toward zero, so "9.7" reads as 9 and "-2.5" as -2."""
    assert _mv(prediction, answer, "integer") == expected


def test_mathvista_text_answers_are_case_sensitive():
    """MathVista's safe_equal compares the strings as they are (only the ends stripped):
    "Paris" is not "paris"."""
    assert _mv("Paris", "Paris", "text") == 1.0
    assert _mv(" Paris ", "Paris", "text") == 1.0
    assert _mv("paris", "Paris", "text") == 0.0


# --- TextVQA / VQA normalisation ----------------------------------------------------------


@pytest.mark.parametrize(
    "word, expected",
    [
        ("shell", "shell"),  # not in EvalAI's table: stays a word
        ("well", "well"),
        ("ill", "ill"),
        ("its", "its"),
        ("wed", "wed"),
        ("hell", "hell"),
        ("lets", "lets"),
        ("im", "im"),  # the table's key is "Im", never reached after lowercasing
        ("dont", "don't"),
        ("cant", "can't"),
        ("wont", "won't"),
        ("hes", "he's"),
        ("yall", "y'all"),
        ("shouldnt've", "shouldn't've"),
        ("somebody'd", "somebodyd"),  # the table maps this one the other way round
    ],
)
def test_vqa_contractions_follow_evalai_table(word, expected):
    """EvalAI's VQA answer processing (vqaEval.py processDigitArticle) replaces a word only
    when it is a key of its fixed contraction table; every other word is left alone."""
    assert normalize_vqa_answer(word) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3.5", "3.5"),  # a period followed by a digit stays
        (".5 kg", ".5 kg"),
        ("5.", "5"),
        ("st. louis", "st louis"),
        ("u.s.a.", "usa"),
        ("x - y", "x y"),  # punctuation touching a space is deleted
        ("coca-cola", "coca cola"),  # otherwise it becomes a space
        ("1,000", "1000"),
        ("." * 40, "." * 8),  # the reference deletes at most 32 periods
    ],
)
def test_vqa_punctuation_and_period_rules(text, expected):
    """EvalAI's processPunctuation: each listed mark is deleted when it touches a space,
    else replaced by a space; periods are then removed by the pattern "a period not
    followed by a digit", with re.UNICODE (32) landing in re.sub's count argument."""
    assert normalize_vqa_answer(text) == expected


def test_vqa_accuracy_does_not_turn_shell_into_a_contraction():
    """With the EvalAI table "shell" and "she'll" are different answers."""
    assert vqa_accuracy("shell", ["she'll"] * 10) == 0.0
    assert vqa_accuracy("Shell.", ["shell"] * 10) == 1.0


# --- ANLS ----------------------------------------------------------------------------------


def test_anls_divides_by_the_raw_lengths():
    """The DocVQA / InfographicVQA evaluation script (RRC, "ANLS"): the distance is between
    the stripped, lowercased, whitespace-collapsed strings, but it is divided by
    max(len(raw answer), len(raw prediction))."""
    assert anls("Acme   Labz", ["acme labs"]) == pytest.approx(1 - 1 / 11)  # raw prediction is 11 long
    assert anls("ab     ", ["xy"]) == pytest.approx(1 - 2 / 7)  # trailing spaces lengthen the divisor
    assert anls("ab", ["xy"]) == 0.0  # 1 - 2/2 is under the 0.5 threshold
    assert anls("", [""]) == 1.0  # both empty: distance 0, the script scores 1
    assert anls("abc", []) == 0.0


# --- references written "", "nan", "NaN" -------------------------------------------------


def test_references_reading_nan_or_empty_are_kept():
    """The standard evaluations read answers as the strings the dataset stores: an
    annotator's "nan" or "" is an answer like any other. Only a value that is absent
    (None, a float NaN) is no answer."""
    assert answer_values(["nan", "NaN", "", " 7 "]) == ("nan", "NaN", "", " 7 ")
    assert answer_values("nan") == ("nan",)
    assert answer_values("") == ("",)
    assert answer_values(None) == () and answer_values(float("nan")) == ()
    assert answer_values(["a", None]) == ("a",)


def test_a_nan_reference_scores_through_the_benchmark():
    """TextVQA's VQA accuracy (EvalAI): with 3 of 10 annotators answering "nan", the answer
    "NaN" matches 3 answers in the 7 leave-one-out subsets that drop a "none" and 2 in the
    other 3: (7 * 1 + 3 * 2/3) / 10."""
    bench = get_benchmark("textvqa")
    row = {"image": _png(), "question": "what is written?", "answers": ["nan"] * 3 + ["none"] * 7, "question_id": 1}
    item = row_to_item(bench, row, "1", "test")
    assert item.references[:3] == ("nan", "nan", "nan")
    assert score(item, "NaN") == pytest.approx(0.9)
    doc = row_to_item(get_benchmark("docvqa"), {"image": _png(), "question": "q", "answers": ["NaN"]}, "2", "test")
    assert score(doc, "nan") == 1.0  # ANLS lowercases


# --- full-width option letters --------------------------------------------------------------


@pytest.mark.parametrize("prediction", ["（B）", "B．", "Ｂ", "Ｂ． dark red", "The answer is （B）."])
def test_fullwidth_option_letters_read_as_ascii(prediction):
    """A full-width form (U+FF01..U+FF5E) is the same character as its ASCII counterpart
    (Unicode compatibility mapping), so "（B）" and "B．" pick option B."""
    assert extract_choice(prediction, OPTS) == "B"
    assert multiple_choice_score(prediction, "B", OPTS) == 1.0


# --- RealWorldQA open-ended ------------------------------------------------------------------


@pytest.mark.parametrize(
    "prediction, answer, expected",
    [
        ("3,5", "3.5", 0.0),  # a comma is not a decimal point
        ("35", "3.5", 0.0),
        ("3.5.", "3.5", 1.0),  # trailing periods are dropped
        (" Downhill ", "downhill", 1.0),
        ("downhill!", "downhill", 0.0),
        ("2", " 2 ", 1.0),
    ],
)
def test_realworldqa_open_answers_are_exact_after_light_cleaning(prediction, answer, expected):
    """RealWorldQA's open-ended answers (lmms-eval's realworldqa task, the field's reference
    harness): prediction lowercased, stripped and trailing periods removed, reference
    stripped and lowercased, then exact equality; no other punctuation is removed."""
    assert exact_match(prediction, [answer]) == expected
