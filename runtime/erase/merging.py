"""Merged tokens: which kept token carries which, and the clusters' means.

A merging method returns a `Merge` over an image's candidate tokens: the kept
ones (whose slots stay) and, per candidate, the kept token that carries it.
The carrier's slot then holds the mean of everything it carries (and keeps
its own position). Stage logic only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Merge:
    """One stage's result over n candidate tokens."""

    keep: np.ndarray  # sorted candidate indices whose slots stay
    carrier: np.ndarray  # [n] the kept index each candidate ends up in (itself, or its centre); -1 if dropped

    @classmethod
    def keep_all(cls, n: int) -> "Merge":
        idx = np.arange(n, dtype=np.int64)
        return cls(idx, idx.copy())


def group_means(x: torch.Tensor, merge: Merge) -> tuple[np.ndarray, torch.Tensor]:
    """The kept indices that carry more than themselves, and their clusters' means (float64)."""
    members = np.flatnonzero(merge.carrier >= 0)
    target = np.searchsorted(merge.keep, merge.carrier[members])
    counts = np.bincount(target, minlength=merge.keep.size)
    grouped = np.flatnonzero(counts > 1)
    if grouped.size == 0:
        return merge.keep[:0], x.new_zeros((0, x.shape[1]), dtype=torch.float64)
    sums = torch.zeros(merge.keep.size, x.shape[1], dtype=torch.float64, device=x.device)
    sums.index_add_(0, torch.from_numpy(target).to(x.device), x[torch.from_numpy(members).to(x.device)].double())
    means = sums / torch.from_numpy(counts).to(x.device, torch.float64)[:, None]
    return merge.keep[grouped], means[torch.from_numpy(grouped).to(x.device)]
