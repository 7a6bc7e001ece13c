"""Where calibration items come from, and how answers are scored: benchmarks, the demo tasks, or a
user's own datasets (benchmarks/own_data.py; their items carry their scorer)."""

from __future__ import annotations

from typing import Any

from erase import EraseError

from .. import benchmarks
from ..benchmarks import own_data

DEMO = "demo"


def known_names() -> list[str]:
    return [*benchmarks.benchmark_names(), DEMO]


def check_names(names: list[str]) -> list[str]:
    out = []
    for name in names:
        if name == DEMO:
            out.append(DEMO)
            continue
        out.append(benchmarks.get_benchmark(name).name)  # one-line error for unknown names
    return out


def item_pool(name: str, *, data_dir: str | None, limit: int, seed: int) -> list[Any]:
    if name == DEMO:
        from ..demo import tasks

        return tasks.calibration_items(limit, seed=seed)
    return benchmarks.load_items(name, data_dir=data_dir, limit=limit, seed=seed)


def score(item: Any, prediction: str) -> float:
    if own_data.is_own(item):
        return own_data.score(item, prediction)
    if item.benchmark == DEMO:
        from ..demo import tasks

        return tasks.score(item, prediction)
    return benchmarks.score(item, prediction)


def default_names(model: str, datasets: list[str] | None = None) -> list[str]:
    """--benchmarks when it is not given: none with --dataset (only the user's data calibrates)."""
    if datasets:
        return []
    if model == DEMO:
        return [DEMO]
    return list(benchmarks.CALIBRATION_BENCHMARKS)


def require(names: list[str]) -> None:
    if not names:
        raise EraseError("no benchmarks given")
