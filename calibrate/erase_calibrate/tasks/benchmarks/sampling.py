"""Seeded choice of rows that does not depend on the order a dataset stores them in.

Rows are first put in a canonical order by their key (the dataset's id, or the
question text and answer where a dataset has no id), then shuffled with
``numpy.random.default_rng(seed)``. The same seed therefore picks the same
questions whether the parquet shards come in another order or the rows were
shuffled, and a smaller limit picks a prefix of what a larger one picks.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import numpy as np

from erase import EraseError


def sample_order(keys: Sequence[str], limit: int | None, seed: int) -> list[int]:
    """Row indices to use: all rows in stored order when `limit` is None, else `limit` seeded picks."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise EraseError(f"seed must be a non-negative integer, got {seed!r}")
    if limit is None:
        return list(range(len(keys)))
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise EraseError(f"limit must be a non-negative integer or None, got {limit!r}")
    canonical = sorted(range(len(keys)), key=lambda i: (keys[i], i))
    permutation = np.random.default_rng(seed).permutation(len(keys))
    return [canonical[int(j)] for j in permutation[: int(limit)]]


def row_key(values: Sequence[Any]) -> str:
    """A stable text key for a row from the values of its key columns."""
    if len(values) == 1 and isinstance(values[0], (str, int)) and not isinstance(values[0], bool):
        return str(values[0])
    return json.dumps(list(values), sort_keys=True, ensure_ascii=False, default=str)


def item_ids(keys: Sequence[str], prefix: str | None) -> list[str]:
    """Item ids: the keys themselves (`prefix` None), or short content hashes "prefix-1a2b3c4d5e".

    Repeated keys get "-2", "-3", ... in stored order, so ids are unique.
    """
    seen: dict[str, int] = {}
    ids = []
    for key in keys:
        base = str(key) if prefix is None else f"{prefix}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:10]}"
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids
