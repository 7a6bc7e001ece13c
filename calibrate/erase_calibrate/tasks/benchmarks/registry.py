"""The ten benchmarks: where each lives, what its columns mean, how to prompt and score it.

Eight are the calibration benchmarks of the ERASE paper (App. D); DocVQA and
MathVista join them for evaluation. Dataset ids moved from ``lmms-lab/*`` to
``lmms-lab-encoder/*`` in mid 2026; both are listed, the new one first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Literal

from erase import EraseError

from . import prompts
from .items import Item
from .mathvista_answers import mathvista_score
from .multiple_choice import multiple_choice_score
from .scoring import anls, exact_match, ocrbench_match, relaxed_accuracy, vqa_accuracy

HANDWRITTEN_MATH = "Handwritten Mathematical Expression Recognition"


@dataclass(frozen=True)
class Columns:
    """Which dataset column holds what.

    `answer` may hold one string or a list of strings. Options come from
    letter columns (`option_columns`, MMBench), from a list column (`choices`,
    MathVista) or from the question text itself (`options_in_question`).
    `extra` columns are copied into `Item.metadata` when present.
    """

    image: str = "image"
    question: str = "question"
    answer: str = "answers"
    id: str | None = None
    hint: str | None = None
    option_columns: tuple[str, ...] = ()
    choices: str | None = None
    options_in_question: bool = False
    answer_type: str | None = None
    precision: str | None = None
    question_type: str | None = None
    unit: str | None = None
    extra: tuple[str, ...] = ()

    def required(self) -> tuple[str, ...]:
        """Columns a dataset must have for this mapping to work."""
        return (self.image, self.question, self.answer)

    def key_columns(self, available: Iterable[str]) -> list[str]:
        """Columns whose values identify a row: the id column, else the question, hint, answer and extras."""
        have = set(available)
        if self.id and self.id in have:
            return [self.id]
        return [c for c in (self.question, self.hint, self.answer, *self.extra) if c and c in have]


@dataclass(frozen=True)
class Benchmark:
    """Everything needed to load, prompt and score one benchmark."""

    name: str
    title: str
    dataset_ids: tuple[str, ...]
    config: str | None
    split: str
    columns: Columns
    build_prompt: Callable[[Item], str]
    scorer: Callable[[str, Item], float]
    metric: str
    report_scale: float = 100.0
    aliases: tuple[str, ...] = ()
    kind: Literal["open", "multiple_choice"] = "open"

    def score(self, item: Item, prediction: str) -> float:
        """Score one prediction for one item, in [0, 1]."""
        return float(self.scorer(prediction, item))

    def report(self, scores: Iterable[float]) -> float:
        """The number a benchmark reports: the mean score times `report_scale`.

        That is a percentage for most, and for OCRBench a count out of 1000.
        """
        values = list(scores)
        return (sum(values) / len(values)) * self.report_scale if values else 0.0


# --- scorers: (prediction, item) -> score -----------------------------------


def _score_anls(prediction: str, item: Item) -> float:
    return anls(prediction, item.references)


def _score_relaxed(prediction: str, item: Item) -> float:
    return max((relaxed_accuracy(prediction, ref) for ref in item.references), default=0.0)


def _score_ocrbench(prediction: str, item: Item) -> float:
    handwritten = item.question_type == HANDWRITTEN_MATH or item.metadata.get("dataset") == "HME100k"
    return ocrbench_match(prediction, item.references, handwritten_math=handwritten)


def _score_vqa(prediction: str, item: Item) -> float:
    return vqa_accuracy(prediction, item.references)


def _score_choice(prediction: str, item: Item) -> float:
    return multiple_choice_score(prediction, item.answer, item.options)


def _score_choice_or_exact(prediction: str, item: Item) -> float:
    """RealWorldQA: option letter when the key is one of the options, else plain equality."""
    if item.options and item.answer.strip().upper() in item.options:
        return multiple_choice_score(prediction, item.answer, item.options)
    return exact_match(prediction, item.references)


def _score_mathvista(prediction: str, item: Item) -> float:
    choices = [item.options[k] for k in sorted(item.options)] if item.options else None
    return mathvista_score(
        prediction,
        item.answer,
        question_type=item.question_type,
        answer_type=item.answer_type,
        precision=item.precision,
        choices=choices,
        unit=item.unit,
    )


# --- the benchmarks -----------------------------------------------------------

_DOCVQA_IDS = ("lmms-lab-encoder/DocVQA", "lmms-lab/DocVQA")

_BENCHMARKS = (
    Benchmark(
        name="infovqa",
        title="InfoVQA",
        dataset_ids=_DOCVQA_IDS,
        config="InfographicVQA",
        split="validation",
        columns=Columns(answer="answers", id="questionId", extra=("answer_type", "operation/reasoning")),
        build_prompt=prompts.short_answer_prompt,
        scorer=_score_anls,
        metric="ANLS",
        aliases=("infographicvqa", "infographicsvqa"),
    ),
    Benchmark(
        name="docvqa",
        title="DocVQA",
        dataset_ids=_DOCVQA_IDS,
        config="DocVQA",
        split="validation",
        columns=Columns(answer="answers", id="questionId", extra=("question_types", "docId")),
        build_prompt=prompts.short_answer_prompt,
        scorer=_score_anls,
        metric="ANLS",
    ),
    Benchmark(
        name="chartqa",
        title="ChartQA",
        dataset_ids=("lmms-lab-encoder/ChartQA", "lmms-lab/ChartQA"),
        config=None,
        split="test",
        columns=Columns(answer="answer", extra=("type",)),
        build_prompt=prompts.single_word_prompt,
        scorer=_score_relaxed,
        metric="relaxed accuracy",
    ),
    Benchmark(
        name="ocrbench",
        title="OCRBench",
        dataset_ids=("echo840/OCRBench",),
        config=None,
        split="test",
        columns=Columns(answer="answer", question_type="question_type", extra=("dataset",)),
        build_prompt=prompts.plain_prompt,
        scorer=_score_ocrbench,
        metric="substring match (count out of 1000)",
        report_scale=1000.0,
    ),
    Benchmark(
        name="textvqa",
        title="TextVQA",
        dataset_ids=("lmms-lab-encoder/textvqa", "lmms-lab/textvqa"),
        config=None,
        split="validation",
        columns=Columns(answer="answers", id="question_id", extra=("image_id",)),
        build_prompt=prompts.short_answer_prompt,
        scorer=_score_vqa,
        metric="VQA accuracy",
    ),
    Benchmark(
        name="realworldqa",
        title="RealWorldQA",
        dataset_ids=("lmms-lab-encoder/RealWorldQA", "lmms-lab/RealWorldQA"),
        config=None,
        split="test",
        columns=Columns(answer="answer", options_in_question=True),
        build_prompt=prompts.plain_prompt,
        scorer=_score_choice_or_exact,
        metric="option letter / exact match",
        aliases=("rwqa",),
        kind="multiple_choice",
    ),
    Benchmark(
        name="mmstar",
        title="MMStar",
        dataset_ids=("Lin-Chen/MMStar",),
        config=None,
        split="val",
        columns=Columns(answer="answer", id="index", options_in_question=True, extra=("category", "l2_category")),
        build_prompt=prompts.option_letter_prompt,
        scorer=_score_choice,
        metric="option letter accuracy",
        kind="multiple_choice",
    ),
    Benchmark(
        name="mmbench",
        title="MMBench (en dev)",
        dataset_ids=("lmms-lab-encoder/MMBench", "lmms-lab/MMBench"),
        config="en",
        split="dev",
        columns=Columns(
            answer="answer",
            id="index",
            hint="hint",
            option_columns=("A", "B", "C", "D", "E"),
            extra=("category", "L2-category", "source"),
        ),
        build_prompt=prompts.mmbench_prompt,
        scorer=_score_choice,
        metric="option letter accuracy (static, no judge)",
        aliases=("mmbenchen", "mmbenchendev", "mmbench_en_dev"),
        kind="multiple_choice",
    ),
    Benchmark(
        name="vstar",
        title="V*Bench",
        dataset_ids=("lmms-lab-encoder/vstar-bench", "lmms-lab/vstar-bench"),
        config=None,
        split="test",
        columns=Columns(
            question="text", answer="label", id="question_id", options_in_question=True, extra=("category",)
        ),
        build_prompt=prompts.vstar_prompt,
        scorer=_score_choice,
        metric="option letter accuracy",
        aliases=("vstarbench", "vbench", "v*", "v*bench"),
        kind="multiple_choice",
    ),
    Benchmark(
        name="mathvista",
        title="MathVista",
        dataset_ids=("AI4Math/MathVista",),
        config=None,
        split="testmini",
        columns=Columns(
            image="decoded_image",
            answer="answer",
            id="pid",
            choices="choices",
            answer_type="answer_type",
            precision="precision",
            question_type="question_type",
            unit="unit",
            extra=("metadata",),
        ),
        build_prompt=prompts.mathvista_prompt,
        scorer=_score_mathvista,
        metric="extracted answer accuracy",
        aliases=("mathvistatestmini",),
    ),
)

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in _BENCHMARKS}
CALIBRATION_BENCHMARKS: tuple[str, ...] = (
    "infovqa",
    "chartqa",
    "ocrbench",
    "textvqa",
    "realworldqa",
    "mmstar",
    "mmbench",
    "vstar",
)
EVALUATION_BENCHMARKS: tuple[str, ...] = (*CALIBRATION_BENCHMARKS, "docvqa", "mathvista")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9*]", "", name.lower())


_LOOKUP: dict[str, str] = {}
for _b in _BENCHMARKS:
    for _alias in (_b.name, _b.title, *_b.aliases):
        _LOOKUP[_key(_alias)] = _b.name
        _LOOKUP[_key(_alias).replace("*", "")] = _b.name


def benchmark_names() -> list[str]:
    """Every known benchmark name, sorted."""
    return sorted(BENCHMARKS)


def get_benchmark(name: str | Benchmark) -> Benchmark:
    """Look a benchmark up by name, title or alias ("ChartQA", "chartqa", "V*Bench", "vstar")."""
    if isinstance(name, Benchmark):
        return name
    found = _LOOKUP.get(_key(str(name))) or _LOOKUP.get(_key(str(name)).replace("*", ""))
    if found is None:
        raise EraseError(f"unknown benchmark {str(name)!r}; known: {', '.join(benchmark_names())}")
    return BENCHMARKS[found]
