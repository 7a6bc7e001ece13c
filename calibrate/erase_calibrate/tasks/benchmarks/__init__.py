"""The calibration and evaluation benchmarks: loading, prompting and scoring.

    from erase_calibrate.tasks.benchmarks import load_items, get_benchmark, score

    items = load_items("chartqa", limit=70, seed=0)            # from the hub
    items = load_items("chartqa", data_dir="data_samples/benchmarks")  # local parquet
    item = items[0]
    item.image, item.prompt, item.references
    score(item, "42")                                          # 1.0 or 0.0 (ANLS / VQA: in between)

Dataset ids, columns, prompts and scoring rules follow BENCHMARKS.md.
"""

from __future__ import annotations

from .. import registry as _tasks
from ..items import Item
from .loading import find_local_files, load_items
from .registry import BENCHMARKS, Benchmark, Columns, benchmark_names, get_benchmark
from .source import register
from .. import sources as _sources  # noqa: F401,E402 - each module there registers one benchmark (or other source)

CALIBRATION_BENCHMARKS: tuple[str, ...] = tuple(_tasks.calibration_names())
EVALUATION_BENCHMARKS: tuple[str, ...] = (
    *CALIBRATION_BENCHMARKS,
    *sorted(s.name for s in _tasks.all_sources() if s.evaluation and s.calibration is None and s.name in BENCHMARKS),
)


def score(item: Item, prediction: str) -> float:
    """Score a model's answer to an item with its benchmark's rule, in [0, 1]."""
    return get_benchmark(item.benchmark).score(item, prediction)


__all__ = [
    "BENCHMARKS",
    "CALIBRATION_BENCHMARKS",
    "EVALUATION_BENCHMARKS",
    "Benchmark",
    "Columns",
    "Item",
    "benchmark_names",
    "find_local_files",
    "get_benchmark",
    "load_items",
    "register",
    "score",
]
