"""Registering a benchmark: its `Benchmark` becomes an item source of the one registry."""

from __future__ import annotations

from .. import registry as tasks_registry
from ..items import Item
from .loading import load_items
from .registry import BENCHMARKS, Benchmark, Columns, score_anls, score_choice  # noqa: F401 - what a source module needs


def register(benchmark: Benchmark, *, calibration: int | None = None, evaluation: bool = True) -> Benchmark:
    """Make BENCHMARK an item source (`calibration`: its place among the paper's eight)."""

    def load(*, data_dir: str | None = None, limit: int | None = None, seed: int = 0) -> list[Item]:
        return load_items(benchmark, data_dir=data_dir, limit=limit, seed=seed)

    tasks_registry.register(
        tasks_registry.TaskSource(
            name=benchmark.name, title=benchmark.title, load=load, score=benchmark.score, aliases=benchmark.aliases,
            calibration=calibration, evaluation=evaluation, spec=benchmark,
        )
    )
    BENCHMARKS[benchmark.name] = benchmark
    return benchmark
