"""Benchmark-level totals, computed the way each benchmark's own evaluation computes them.

The per-item scorers (`Benchmark.score`) give one number per question; this
module turns a benchmark's item results into the one number it reports:

    from erase_calibrate.tasks.benchmarks.aggregates import ItemResult, aggregate

    results = [ItemResult.from_item(item, bench.score(item, answer)) for item, answer in ...]
    accuracy = aggregate("mmbench", results)        # a fraction in [0, 1]
    headline = accuracy * get_benchmark("mmbench").report_scale   # 100 for %, 1000 for OCRBench

`aggregate(benchmark, results)` accepts `ItemResult`s or plain mappings with
the same keys ({"id": ..., "score": ..., "l2_category": ...}, as a results
cache would store them). The rules:

- MMBench: circular evaluation. Option-shuffled copies of a question carry the
  original's index plus a multiple of 1,000,000, so copies are grouped by
  ``int(id) % 1_000_000``; a group counts as right only when every copy in it
  scored 1.0, and the total is the fraction of groups right. When the data
  holds one copy of a question (a single-pass dev set, or a sample that drew
  one copy), its group has that one member and the rule is plain accuracy for
  it. An id that is not an integer is a group of its own. Unlike MMBench's
  evaluator, a group whose original (index below 1,000,000) is absent from a
  sample is still counted, from the copies present.
- MMStar: the mean of the per-`l2_category` means (each category weighs the
  same, whatever its size). Items without an l2_category form one group.
- Every other benchmark: the mean item score (DocVQA / InfoVQA mean ANLS,
  TextVQA mean VQA accuracy, ChartQA relaxed accuracy, OCRBench, RealWorldQA,
  V*Bench and MathVista accuracy), and so is every other item source (the demo tasks).

No results at all is an error, not a zero.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from erase import EraseError

from .. import registry as tasks_registry
from .registry import Benchmark

MMBENCH_COPY_STRIDE = 1_000_000


@dataclass(frozen=True)
class ItemResult:
    """One scored item: its id, its score in [0, 1] and the category the totals need."""

    id: str
    score: float
    l2_category: str | None = None

    @classmethod
    def from_item(cls, item: Any, score: float) -> "ItemResult":
        """The result of `item` (an `Item`: its id and its metadata's "l2_category")."""
        category = item.metadata.get("l2_category") if item.metadata else None
        return cls(id=str(item.id), score=float(score), l2_category=None if category is None else str(category))

    @classmethod
    def coerce(cls, value: "ItemResult | Mapping[str, Any]") -> "ItemResult":
        """An `ItemResult` from itself or from a mapping with the keys id, score and (optionally) l2_category."""
        if isinstance(value, ItemResult):
            return value
        category = value.get("l2_category")
        category = None if category is None else str(category)
        return cls(id=str(value["id"]), score=float(value["score"]), l2_category=category)


def mean_score(results: Sequence[ItemResult]) -> float:
    """The mean item score."""
    return sum(r.score for r in results) / len(results)


def mmbench_group(item_id: str) -> str:
    """The original question an MMBench row belongs to: its index modulo 1,000,000."""
    try:
        return str(int(item_id) % MMBENCH_COPY_STRIDE)
    except ValueError:
        return item_id


def mmbench_circular(results: Sequence[ItemResult]) -> float:
    """Fraction of questions whose every option-shuffled copy scored 1.0."""
    groups: dict[str, bool] = {}
    for r in results:
        key = mmbench_group(r.id)
        groups[key] = groups.get(key, True) and r.score >= 1.0
    return sum(groups.values()) / len(groups)


def mmstar_category_mean(results: Sequence[ItemResult]) -> float:
    """Mean over l2_categories of the mean score within each."""
    by_category: dict[str | None, list[float]] = defaultdict(list)
    for r in results:
        by_category[r.l2_category].append(r.score)
    return sum(sum(s) / len(s) for s in by_category.values()) / len(by_category)


AGGREGATES: dict[str, Callable[[Sequence[ItemResult]], float]] = {
    "mmbench": mmbench_circular,
    "mmstar": mmstar_category_mean,
}


def aggregate(benchmark: Any, results: Iterable[ItemResult | Mapping[str, Any]]) -> float:
    """The benchmark's total over `results`, a fraction in [0, 1] (see the module docstring).

    `benchmark` is a `Benchmark` or the name, title or alias of any item source (an unknown
    name is an error). Multiply by the benchmark's `report_scale` for the number it reports.
    """
    name = benchmark.name if isinstance(benchmark, Benchmark) else tasks_registry.get(benchmark).name
    items = [ItemResult.coerce(r) for r in results]
    if not items:
        raise EraseError(f"{name}: no item results to aggregate")
    return AGGREGATES.get(name, mean_score)(items)
