"""The one registry of item sources: where items come from, and how answers to them are scored.

Every module of `tasks/sources/` registers one source (a benchmark of the paper, the demo
tasks, ...); `tasks/sources/__init__.py` imports them all, so adding a source is adding a
module there. A user's own datasets (`--dataset`, own_data.py) are not named sources: their
items carry their scorer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from erase import EraseError

from .items import Item


@dataclass(frozen=True)
class TaskSource:
    name: str
    title: str
    load: Callable[..., list[Item]]  # (*, data_dir, limit, seed) -> items
    score: Callable[[Item, str], float]  # (item, prediction) -> [0, 1]
    aliases: tuple[str, ...] = ()
    calibration: int | None = None  # its place among the paper's calibration benchmarks (1..8), if one
    evaluation: bool = True  # one of the evaluation benchmarks
    spec: Any = None  # what describes it further (a benchmark's `Benchmark`)
    # Items for evaluation only, never calibrated on ((*, data_dir, limit, seed) -> items); None: a
    # source evaluates on `load` (a benchmark's evaluation split).
    heldout: Callable[..., list[Item]] | None = None


_SOURCES: dict[str, TaskSource] = {}
_LOOKUP: dict[str, str] = {}
# Items that carry their own rule (a user's dataset names its scorer): (claims the item, score).
_ITEM_RULES: list[tuple[Callable[[Item], bool], Callable[[Item, str], float]]] = []


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9*]", "", name.lower())


def register(source: TaskSource) -> TaskSource:
    if source.name in _SOURCES:
        raise ValueError(f"item source {source.name!r} is registered twice")
    _SOURCES[source.name] = source
    for alias in (source.name, source.title, *source.aliases):
        _LOOKUP[_key(alias)] = source.name
        _LOOKUP[_key(alias).replace("*", "")] = source.name
    return source


def get(name: str) -> TaskSource:
    """A source by name, title or alias ("ChartQA", "chartqa", "V*Bench", "vstar"); one-line error otherwise."""
    found = _LOOKUP.get(_key(str(name))) or _LOOKUP.get(_key(str(name)).replace("*", ""))
    if found is None:
        raise EraseError(f"unknown benchmark {str(name)!r}; known: {', '.join(known_names())}")
    return _SOURCES[found]


def all_sources() -> list[TaskSource]:
    return [_SOURCES[n] for n in sorted(_SOURCES)]


def known_names() -> list[str]:
    return sorted(_SOURCES)


def calibration_names() -> list[str]:
    """The paper's calibration benchmarks, in the paper's order."""
    ranked = [s for s in _SOURCES.values() if s.calibration is not None]
    return [s.name for s in sorted(ranked, key=lambda s: s.calibration)]


def check_names(names: list[str]) -> list[str]:
    return [get(name).name for name in names]  # one-line error for unknown names


def item_pool(name: str, *, data_dir: str | None, limit: int | None, seed: int) -> list[Item]:
    return get(name).load(data_dir=data_dir, limit=limit, seed=seed)


def evaluation_pool(name: str, *, data_dir: str | None, limit: int | None, seed: int) -> list[Item]:
    """The items NAME is evaluated on: its held-out loader where it has one, else `load`."""
    source = get(name)
    return (source.heldout or source.load)(data_dir=data_dir, limit=limit, seed=seed)


def register_item_rule(claims: Callable[[Item], bool], rule: Callable[[Item, str], float]) -> None:
    """Score the items CLAIMS picks with RULE instead of their source's (own_data.py registers one)."""
    _ITEM_RULES.append((claims, rule))


def score(item: Item, prediction: str) -> float:
    """The item's own rule where it carries one (--dataset items), else its source's."""
    for claims, rule in _ITEM_RULES:
        if claims(item):
            return float(rule(item, prediction))
    return float(get(item.benchmark).score(item, prediction))


def default_names(model_tasks: tuple[str, ...] | None, datasets: list[str] | None = None) -> list[str]:
    """--benchmarks when it is not given: none with --dataset (only the user's data calibrates),
    else what the model's registration names, else the paper's calibration benchmarks."""
    if datasets:
        return []
    if model_tasks is not None:
        return list(model_tasks)
    return calibration_names()


def require(names: list[str]) -> None:
    if not names:
        raise EraseError("no benchmarks given")
