"""Item sources, one registry: where items come from, how a model is asked, how answers score.

    from erase_calibrate import tasks

    items = tasks.item_pool("chartqa", data_dir="data_samples/benchmarks", limit=20, seed=0)
    items = tasks.item_pool("demo", data_dir=None, limit=72, seed=0)   # the demo's generated tasks
    items = tasks.evaluation_pool("demo", data_dir=None, limit=None, seed=0)  # its held-out items (360)
    inputs = tasks.encode(processor, items[0], "cpu")                    # chat template + processor
    answer = tasks.decode(model, processor, generated_ids)               # text up to end of turn
    tasks.score(items[0], answer.text)                                   # in [0, 1], the item's own rule

Sources: one module each in `sources/` (the paper's benchmarks, the demo tasks); a user's own
datasets (`own_data`, `--dataset`) carry their scorer on their items.
"""

from __future__ import annotations

from .registry import (
    TaskSource,
    all_sources,
    calibration_names,
    check_names,
    default_names,
    evaluation_pool,
    get,
    item_pool,
    known_names,
    register,
    require,
    score,
)
from .items import Item
from . import benchmarks  # noqa: E402 - registers every source in sources/
from . import own_data  # noqa: E402
from .answering import Answer, decode, encode, encode_batch, greedy_answer, greedy_answers, prompt_text  # noqa: E402

__all__ = [
    "Answer",
    "Item",
    "TaskSource",
    "all_sources",
    "benchmarks",
    "calibration_names",
    "check_names",
    "decode",
    "default_names",
    "encode",
    "encode_batch",
    "evaluation_pool",
    "get",
    "greedy_answer",
    "greedy_answers",
    "item_pool",
    "known_names",
    "own_data",
    "prompt_text",
    "register",
    "require",
    "score",
]
