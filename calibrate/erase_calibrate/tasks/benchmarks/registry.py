"""What a benchmark is: where it lives, what its columns mean, how to prompt and score it.

Each benchmark is one module of `erase_calibrate.tasks.sources` that calls `source.register` with
its `Benchmark`; that makes it an item source of the one registry (tasks/registry.py). Eight are the
calibration benchmarks of the ERASE paper (App. D); DocVQA and MathVista join them for evaluation.
Dataset ids moved from ``lmms-lab/*`` to ``lmms-lab-encoder/*`` in mid 2026; both are listed, the
new one first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Literal

from erase import EraseError

from .. import registry as tasks_registry
from ..items import Item
from .multiple_choice import multiple_choice_score
from .scoring import anls


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


# --- scorers shared by several benchmarks: (prediction, item) -> score ----------


def score_anls(prediction: str, item: Item) -> float:
    return anls(prediction, item.references)


def score_choice(prediction: str, item: Item) -> float:
    return multiple_choice_score(prediction, item.answer, item.options)


# --- the registry ---------------------------------------------------------------

BENCHMARKS: dict[str, Benchmark] = {}  # filled by `source.register` as tasks/sources/ registers them


def benchmark_names() -> list[str]:
    """Every known benchmark name, sorted."""
    return sorted(BENCHMARKS)


def get_benchmark(name: str | Benchmark) -> Benchmark:
    """Look a benchmark up by name, title or alias ("ChartQA", "chartqa", "V*Bench", "vstar")."""
    if isinstance(name, Benchmark):
        return name
    spec = tasks_registry.get(name).spec
    if not isinstance(spec, Benchmark):
        raise EraseError(f"unknown benchmark {str(name)!r}; known: {', '.join(benchmark_names())}")
    return spec
