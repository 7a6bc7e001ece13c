"""The benchmark layer: registry, offline loading of the shipped stand-ins, prompts, scoring rules."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from erase import EraseError
from erase_calibrate.tasks.benchmarks import (
    BENCHMARKS,
    CALIBRATION_BENCHMARKS,
    EVALUATION_BENCHMARKS,
    benchmark_names,
    get_benchmark,
    load_items,
    score,
)
from erase_calibrate.tasks.benchmarks.mathvista_answers import mathvista_extract, mathvista_score
from erase_calibrate.tasks.benchmarks.multiple_choice import extract_choice, multiple_choice_score
from erase_calibrate.tasks.benchmarks.options import parse_options
from erase_calibrate.tasks.benchmarks.sampling import sample_order
from erase_calibrate.tasks.benchmarks.scoring import anls, fold_fullwidth, ocrbench_match, relaxed_accuracy, vqa_accuracy
from erase_calibrate.tasks.benchmarks.vqa_normalize import normalize_vqa_answer

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples" / "benchmarks"
LETTER = "Answer with the option's letter from the given choices directly."
PHRASE = "Answer the question using a single word or phrase."


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf-cache")


@pytest.fixture(scope="session")
def samples(cache) -> dict:
    return {name: load_items(name, data_dir=SAMPLES, cache_dir=cache) for name in benchmark_names()}


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert text and "\n" not in text, text
    return text


# --- registry ---------------------------------------------------------------------------


def test_benchmark_sets_follow_the_paper():
    assert set(CALIBRATION_BENCHMARKS) == {
        "infovqa", "chartqa", "ocrbench", "textvqa", "realworldqa", "mmstar", "mmbench", "vstar"
    }
    assert set(EVALUATION_BENCHMARKS) == set(CALIBRATION_BENCHMARKS) | {"docvqa", "mathvista"}
    assert set(BENCHMARKS) == set(EVALUATION_BENCHMARKS)


def test_dataset_ids_accept_old_and_new_lmms_lab_names():
    for b in BENCHMARKS.values():
        new = [i for i in b.dataset_ids if i.startswith("lmms-lab-encoder/")]
        old = [i for i in b.dataset_ids if i.startswith("lmms-lab/")]
        assert [i.split("/")[1] for i in new] == [i.split("/")[1] for i in old]
    spec = get_benchmark("InfoVQA")
    assert (spec.dataset_ids, spec.config, spec.split) == (
        ("lmms-lab-encoder/DocVQA", "lmms-lab/DocVQA"), "InfographicVQA", "validation"
    )
    assert (get_benchmark("mmbench").config, get_benchmark("mmbench").split) == ("en", "dev")
    assert get_benchmark("ocrbench").dataset_ids == ("echo840/OCRBench",)
    mathvista = get_benchmark("mathvista")
    assert (mathvista.dataset_ids, mathvista.split) == (("AI4Math/MathVista",), "testmini")


def test_lookup_by_title_and_alias():
    assert get_benchmark("V*Bench").name == "vstar"
    assert get_benchmark("MMBench (en dev)").name == "mmbench"
    assert get_benchmark("ChartQA").name == "chartqa"
    assert get_benchmark("InfographicVQA").name == "infovqa"


def test_unknown_benchmark_is_one_line_listing_names():
    with pytest.raises(EraseError) as exc:
        get_benchmark("imagenet")
    text = one_line(exc)
    assert "'imagenet'" in text and all(name in text for name in benchmark_names())


# --- loading the stand-ins --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_standin_loads_into_wellformed_items(samples, name):
    items = samples[name]
    assert 3 <= len(items) <= 5
    assert len({it.id for it in items}) == len(items)
    for it in items:
        assert it.benchmark == name and it.id and it.question and it.prompt and it.references
        image = it.image
        assert isinstance(image, Image.Image) and image.mode == "RGB" and max(image.size) <= 320
        assert it.metadata["synthetic"] is True
        assert score(it, it.answer) == 1.0, (it.id, it.answer)
        assert score(it, "zebra crossing at dawn") < 1.0


EXPECTED_ENDINGS = {
    "infovqa": "\n" + PHRASE,
    "docvqa": "\n" + PHRASE,
    "textvqa": "\n" + PHRASE,
    "chartqa": "\nAnswer the question with a single word.",
    "mmstar": "\n" + LETTER,
    "mmbench": "\n" + LETTER,
    "vstar": "\n" + LETTER,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_ENDINGS))
def test_prompts_end_with_the_qwen_suffix(samples, name):
    for it in samples[name]:
        assert it.prompt.endswith(EXPECTED_ENDINGS[name])
        assert it.prompt.count(LETTER) <= 1
        if name not in ("mmbench", "vstar"):  # those two rebuild the question (below)
            assert it.prompt == it.question.strip() + EXPECTED_ENDINGS[name]


def test_plain_prompts_are_the_question(samples):
    for name in ("ocrbench", "realworldqa"):
        for it in samples[name]:
            assert it.prompt == it.question.strip()


def test_mmbench_prompt_layout(samples):
    with_hint = next(it for it in samples["mmbench"] if it.hint)
    assert with_hint.prompt == (
        f"{with_hint.hint}\n{with_hint.question}\nThere are several options:\n"
        + "\n".join(f"{k}. {v}" for k, v in sorted(with_hint.options.items()))
        + "\n"
        + LETTER
    )
    three = next(it for it in samples["mmbench"] if len(it.options) == 3 and not it.hint)  # D is empty
    assert "\nD. " not in three.prompt and three.prompt.startswith(three.question + "\nThere are several options:\nA. ")


def test_vstar_prompt_rewrites_options_and_keeps_one_instruction(samples):
    it = samples["vstar"][0]
    assert "(A)" in it.question and it.question.endswith(LETTER)
    lines = it.prompt.split("\n")
    assert lines[0].endswith("?") and lines[1].startswith("A. ") and lines[-1] == LETTER
    assert it.prompt.count(LETTER) == 1


def test_mathvista_prompts_carry_the_hint_for_the_answer_type(samples):
    by_type = {(it.question_type, it.answer_type, it.precision): it for it in samples["mathvista"]}
    integer = by_type[("free_form", "integer", None)]
    assert integer.prompt.endswith("\nAnswer the question using a single integer number.")
    mc = by_type[("multi_choice", "text", None)]
    assert mc.prompt.endswith("\nA. 30°\nB. 45°\nC. 60°\nD. 90°\n" + LETTER)
    assert by_type[("free_form", "float", 1)].prompt.endswith("floating-point number with one decimal place.")
    money = by_type[("free_form", "float", 2)]
    assert "(Unit: $)" in money.prompt and money.prompt.endswith("with two decimal places.")
    assert by_type[("free_form", "list", None)].prompt.endswith("\nAnswer the question using a Python list.")


def test_ocrbench_handwritten_math_item_uses_its_rule(samples):
    hme = next(it for it in samples["ocrbench"] if it.metadata["dataset"] == "HME100k")
    assert score(hme, hme.answer.replace(" ", "")) == 1.0
    assert score(hme, hme.answer.upper()) == 0.0  # case is kept


# --- sampling ----------------------------------------------------------------------------


def test_seeded_limit_is_deterministic_and_prefix_stable(cache):
    a = [it.id for it in load_items("chartqa", data_dir=SAMPLES, limit=2, seed=3, cache_dir=cache)]
    b = [it.id for it in load_items("chartqa", data_dir=SAMPLES, limit=2, seed=3, cache_dir=cache)]
    c = [it.id for it in load_items("chartqa", data_dir=SAMPLES, limit=3, seed=3, cache_dir=cache)]
    assert a == b and c[:2] == a
    orders = {tuple(sample_order(list("abcd"), 4, seed)) for seed in range(10)}
    assert len(orders) > 1


def test_sampling_ignores_row_and_shard_order(cache, tmp_path):
    table = pq.read_table(SAMPLES / "textvqa.parquet")
    reversed_rows = table.take(pa.array(list(range(table.num_rows))[::-1]))
    shards = tmp_path / "textvqa"
    shards.mkdir()
    pq.write_table(reversed_rows.slice(0, 1), shards / "validation-00001-of-00002.parquet")
    pq.write_table(reversed_rows.slice(1), shards / "validation-00000-of-00002.parquet")
    original = [it.id for it in load_items("textvqa", data_dir=SAMPLES, limit=2, seed=7, cache_dir=cache)]
    shuffled = [it.id for it in load_items("textvqa", data_dir=tmp_path, limit=2, seed=7, cache_dir=cache)]
    assert original == shuffled
    assert load_items("textvqa", data_dir=tmp_path, limit=0, cache_dir=cache) == []


def test_folder_layout_narrows_to_split_and_config(cache, tmp_path):
    folder = tmp_path / "InfoVQA" / "InfographicVQA"
    folder.mkdir(parents=True)
    shutil.copy(SAMPLES / "infovqa.parquet", folder / "validation-00000-of-00001.parquet")
    other = tmp_path / "InfoVQA" / "DocVQA"
    other.mkdir()
    shutil.copy(SAMPLES / "docvqa.parquet", other / "validation-00000-of-00001.parquet")
    shutil.copy(SAMPLES / "docvqa.parquet", folder / "test-00000-of-00001.parquet")
    items = load_items("infovqa", data_dir=tmp_path, cache_dir=cache)
    assert [it.id for it in items] == [it.id for it in load_items("infovqa", data_dir=SAMPLES, cache_dir=cache)]


# --- one-line errors -------------------------------------------------------------------


def test_missing_data_dir_is_one_line_naming_it(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(EraseError) as exc:
        load_items("chartqa", data_dir=missing)
    assert str(missing) in one_line(exc)


def test_benchmark_missing_from_data_dir(tmp_path):
    shutil.copy(SAMPLES / "chartqa.parquet", tmp_path / "chartqa.parquet")
    with pytest.raises(EraseError) as exc:
        load_items("mmstar", data_dir=tmp_path)
    text = one_line(exc)
    assert str(tmp_path) in text and "mmstar" in text


def test_corrupt_parquet_is_one_line(tmp_path, cache):
    (tmp_path / "chartqa.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(EraseError) as exc:
        load_items("chartqa", data_dir=tmp_path, cache_dir=cache)
    assert "chartqa.parquet" in one_line(exc)


def test_wrong_schema_is_one_line(tmp_path, cache):
    pq.write_table(pa.table({"question": ["q"], "answer": ["a"]}), tmp_path / "chartqa.parquet")
    with pytest.raises(EraseError) as exc:
        load_items("chartqa", data_dir=tmp_path, cache_dir=cache)
    assert "image" in one_line(exc)


def test_bad_limit_is_one_line():
    with pytest.raises(EraseError) as exc:
        load_items("chartqa", data_dir=SAMPLES, limit=-1)
    one_line(exc)


def test_hub_path_tries_new_then_old_id(monkeypatch, cache):
    import datasets

    calls = []
    real_load = datasets.load_dataset

    def fake_load(*args, **kwargs):
        calls.append((args, kwargs["split"]))
        if args[0].startswith("lmms-lab-encoder/"):
            raise FileNotFoundError("Couldn't find a dataset script\nor any data file")
        files = [str(SAMPLES / "mmbench.parquet")]
        return real_load("parquet", data_files=files, split="train", cache_dir=kwargs["cache_dir"])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    items = load_items("mmbench", limit=2, cache_dir=cache)
    assert calls[0] == (("lmms-lab-encoder/MMBench", "en"), "dev")
    assert calls[1][0] == ("lmms-lab/MMBench", "en")
    assert len(items) == 2 and "synthetic" not in items[0].metadata

    def offline(*args, **kwargs):
        raise ConnectionError("offline\nmode")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(EraseError) as exc:
        load_items("chartqa")
    text = one_line(exc)
    assert "lmms-lab-encoder/ChartQA" in text and "lmms-lab/ChartQA" in text and "data_dir" in text


# --- scoring rules -----------------------------------------------------------------------


def test_anls_threshold_and_best_reference():
    assert anls("Acme  LABS", ["acme labs"]) == 1.0
    assert anls("acme labz", ["acme labs"]) == pytest.approx(1 - 1 / 9)
    assert anls("abcd", ["abxy"]) == 0.5  # exactly at the threshold counts
    assert anls("abcde", ["axyzw"]) == 0.0  # 0.2 is below 0.5
    assert anls("4965", ["$4,965.00", "4965"]) == 1.0  # best over references
    assert anls("4,965.00", ["$4,965.00", "4965"]) == pytest.approx(8 / 9)
    assert anls("", ["x"]) == 0.0


def test_chartqa_relaxed_accuracy():
    assert relaxed_accuracy("46", "45") == 1.0  # 2.2 % off
    assert relaxed_accuracy("47.25", "45") == 1.0  # exactly 5 %
    assert relaxed_accuracy("48", "45") == 0.0  # 6.7 % off
    assert relaxed_accuracy("45%", "0.45") == 1.0  # a trailing % divides by 100
    assert relaxed_accuracy("0.46", "45%") == 1.0
    assert relaxed_accuracy("45%", "45%") == 1.0
    assert relaxed_accuracy("45", "45%") == 0.0
    assert relaxed_accuracy("0", "0") == 1.0 and relaxed_accuracy("0.01", "0") == 0.0
    assert relaxed_accuracy(" Water ", "water") == 1.0
    assert relaxed_accuracy("Waters", "water") == 0.0


def test_ocrbench_substring_case_and_fullwidth():
    assert ocrbench_match("The word is HARBOR.", ["harbor"]) == 1.0
    assert ocrbench_match("harb or", ["harbor"]) == 0.0
    assert ocrbench_match("ＨＡＲＢＯＲ", ["harbor"]) == 1.0
    assert ocrbench_match("total：１２.５０", "12.50") == 1.0
    assert fold_fullwidth("Ａ１\u3000！") == "A1 !"
    assert ocrbench_match("nope", ["a", "nope"]) == 1.0
    assert ocrbench_match("\\frac { a } { b }", ["\\frac{a}{b}"], handwritten_math=True) == 1.0
    assert ocrbench_match("\\frac{A}{b}", ["\\frac{a}{b}"], handwritten_math=True) == 0.0


def test_textvqa_normalisation():
    assert normalize_vqa_answer("The Stop sign!") == "stop sign"
    assert normalize_vqa_answer("two") == "2" and normalize_vqa_answer("none") == "0"
    assert normalize_vqa_answer("dont") == "don't" and normalize_vqa_answer("youre") == "you're"
    assert normalize_vqa_answer("st. louis") == "st louis"
    assert normalize_vqa_answer("3.5") == "3.5"
    assert normalize_vqa_answer("coca-cola") == "coca cola"
    assert normalize_vqa_answer("1,000") == "1000"
    assert normalize_vqa_answer("an apple") == "apple"


@pytest.mark.parametrize("matches, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_textvqa_leave_one_out_accuracy(matches, expected):
    answers = ["stop"] * matches + ["go"] * (10 - matches)
    # Each of the 10 subsets leaves one answer out: min(1, matches among the other 9 / 3).
    by_formula = sum(min(1, (matches - (a == "stop")) / 3) for a in answers) / 10
    assert vqa_accuracy("Stop.", answers) == pytest.approx(expected) == pytest.approx(by_formula)


def test_parse_options_in_the_three_styles():
    v = parse_options("What colour is it?\n(A) red\n(B) dark red\n(C) blue\nAnswer with the option's letter.")
    assert v.stem == "What colour is it?" and v.options == {"A": "red", "B": "dark red", "C": "blue"}
    assert v.tail == "Answer with the option's letter."
    s = parse_options("Which is largest?\nOptions: A: 8, B: 4, C: 6, D: 2")
    assert s.stem == "Which is largest?" and s.options == {"A": "8", "B": "4", "C": "6", "D": "2"}
    r = parse_options("Plan A. Which way?\nA. left\nB. right\nPlease answer directly.")
    assert r.options == {"A": "left", "B": "right"} and r.stem == "Plan A. Which way?"
    assert parse_options("No options here.").options == {}


OPTS = {"A": "red", "B": "dark red", "C": "blue", "D": "green"}


@pytest.mark.parametrize(
    "prediction, letter",
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("b", "B"),
        ("**B**", "B"),
        ("Answer: B", "B"),
        ("The answer is (B).", "B"),
        ("B. dark red", "B"),
        ("dark red", "B"),
        ("It is dark red.", "B"),
        ("blue", "C"),
        ("I would pick C.", "C"),
        ("E", None),
        ("the answer is a colour", None),
        ("", None),
    ],
)
def test_option_letter_extraction(prediction, letter):
    assert extract_choice(prediction, OPTS) == letter


def test_multiple_choice_score_against_the_key():
    assert multiple_choice_score("(C) blue", "C", OPTS) == 1.0
    assert multiple_choice_score("blue", "(C)", OPTS) == 1.0
    assert multiple_choice_score("red", "C", OPTS) == 0.0


def test_realworldqa_free_form_answers_use_plain_equality(samples):
    free = next(it for it in samples["realworldqa"] if not it.options)
    assert score(free, f" {free.answer.lower()}. ") == 1.0


@pytest.mark.parametrize(
    "prediction, answer, answer_type, precision, expected",
    [
        ("12", "12", "integer", None, 1.0),
        ("12.0", "12", "integer", None, 1.0),
        ("1,200", "1200", "integer", None, 1.0),
        ("twelve", "12", "integer", None, 0.0),
        ("12.5", "12", "integer", None, 1.0),  # the official int(float(x)) truncates
        ("2.45", "2.5", "float", 1, 1.0),  # round(2.45, 1) is 2.5 (2.45 is stored a hair above)
        ("2.44", "2.5", "float", 1, 0.0),
        ("1.5", "1.50", "float", 2, 0.0),  # str(round(1.5, 2)) is "1.5", not the stored "1.50"
        ("The answer is 1.85.", "1.85", "float", 2, 1.0),
        ("It costs about 1.85 in total", "1.85", "float", 2, 0.0),  # no LLM extraction
        ("[2007, 2008]", "[2007, 2008]", "list", None, 1.0),
        ("[2007.0,2008]", "[2007, 2008]", "list", None, 1.0),
        ("2007, 2008", "[2007, 2008]", "list", None, 0.0),
    ],
)
def test_mathvista_free_form_rules(prediction, answer, answer_type, precision, expected):
    got = mathvista_score(prediction, answer, question_type="free_form", answer_type=answer_type, precision=precision)
    assert got == expected


def test_mathvista_multiple_choice_and_unit():
    choices = ["30°", "45°", "60°", "90°"]
    kw = dict(question_type="multi_choice", answer_type="text", choices=choices)
    assert mathvista_extract("B", **kw) == "45°"
    assert mathvista_score("B", "45°", **kw) == 1.0
    assert mathvista_score("45°", "45°", **kw) == 1.0
    assert mathvista_score("(C)", "45°", **kw) == 0.0
    assert mathvista_score("12 cm", "12", question_type="free_form", answer_type="integer", unit="cm") == 1.0


def test_ocrbench_reports_a_count_out_of_1000():
    assert get_benchmark("ocrbench").report([1, 0, 1, 1]) == 750.0
    assert get_benchmark("chartqa").report([1, 0]) == 50.0


def test_sample_generator_matches_the_shipped_files():
    import numpy as np

    sys.path.insert(0, str(ROOT / "scripts"))  # a development tool of the checkout, not installed
    try:
        from make_samples import BUILDERS
    finally:
        sys.path.remove(str(ROOT / "scripts"))

    vstar = list(BUILDERS).index("vstar")
    first, second = (BUILDERS["vstar"](np.random.default_rng([0, vstar]))[1] for _ in range(2))
    assert first == second  # deterministic for a seed
    for offset, (name, build) in enumerate(BUILDERS.items()):
        features, rows = build(np.random.default_rng([0, offset]))  # the seeds write_samples uses for seed 0
        shipped = pq.read_table(SAMPLES / f"{name}.parquet")
        assert shipped.schema.metadata[b"erase_synthetic"] == b"true"
        assert shipped.schema.names == list(features)
        assert shipped.schema.remove_metadata().equals(features.arrow_schema.remove_metadata())
        assert shipped.num_rows == len(rows) and 3 <= len(rows) <= 5
        text_columns = [c for c in shipped.schema.names if pa.types.is_string(shipped.schema.field(c).type)]
        for column in text_columns:
            assert shipped.column(column).to_pylist() == [r[column] for r in rows], (name, column)
    total = sum(p.stat().st_size for p in SAMPLES.iterdir())
    assert total < 1_000_000
