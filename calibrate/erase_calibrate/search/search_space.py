"""The search space: thresholds as quantiles of the calibration set, one keep ratio per level.

Every trial is feasible by construction: its thresholds leave every complexity
level non-empty on the calibration set.

The paper (App. D) draws the N-1 thresholds anywhere in (0, ln 256). On a
fixed calibration set only the *partition* of its images into levels matters:
two threshold vectors that put every calibration image in the same level give
the same trial result. So the space draws partitions instead. Let d_1 > d_2 >
... > d_m be the distinct global entropies of the calibration images. A
partition with no empty level is a choice of N-1 cut positions
0 < c_1 < ... < c_{N-1} < m (c_j distinct complexities lie above threshold j);
threshold j is then the midpoint of the gap it falls in, (d_{c_j} + d_{c_j+1}) / 2.

TPE draws one parameter q_j in [0, 1] per threshold, the share of the distinct
complexities that lies above it (a quantile); sorted, they map to cut positions
c_j = j + floor(q_(j) * (m - N + 1)), which are strictly increasing and leave at
least one distinct complexity in every level. Every feasible partition of the
paper's space is reachable, and no draw is wasted on an empty level.

Keep ratios are drawn from the reference's ranges, level 1 (most complex) in
[0.6, 0.9], the others in [0.1, 0.85], on a grid of `keep_step` (0.01, one
token in 100): finer than any calibration set resolves, and coarse enough
that trials meet the same (item, kept tokens) again, which the memo serves
(memo.py). The paper's ratios (e.g. 17.32 %) are continuous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from erase import EraseError

MAX_ENTROPY = math.log(256)


@dataclass(frozen=True)
class SearchSpace:
    entropies: Sequence[float]  # the calibration images' global entropies
    levels: int = 4
    top_keep_range: tuple[float, float] = (0.6, 0.9)  # the most complex level (reference range)
    keep_range: tuple[float, float] = (0.1, 0.85)  # the other levels
    keep_step: float | None = 0.01  # None: continuous
    distinct: tuple[float, ...] = field(init=False)  # descending

    def __post_init__(self) -> None:
        if self.levels < 2:
            raise ValueError(f"levels must be >= 2, got {self.levels}")
        for name in ("top_keep_range", "keep_range"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ValueError(f"{name} must be an increasing (low, high) pair, got {(lo, hi)}")
            if not (0 < lo and hi <= 1):
                raise ValueError(f"keep ratio ranges must lie in (0, 1], got {(lo, hi)}")
        distinct = tuple(sorted({float(h) for h in self.entropies}, reverse=True))
        object.__setattr__(self, "distinct", distinct)
        if len(distinct) < self.levels:
            raise EraseError(
                f"the calibration images have {len(distinct)} distinct complexities (global entropies), fewer than "
                f"--levels {self.levels}: some level would stay empty; use fewer levels or more, more varied images"
            )

    @property
    def room(self) -> int:
        """How many positions each cut can take: m - N + 1."""
        return len(self.distinct) - self.levels + 1

    # ---------------------------------------------------------------- trials
    def suggest(self, trial: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
        params = {f"q{j}": trial.suggest_float(f"q{j}", 0.0, 1.0) for j in range(1, self.levels)}
        for i in range(1, self.levels + 1):
            rng = self.top_keep_range if i == 1 else self.keep_range
            params[f"keep{i}"] = trial.suggest_float(f"keep{i}", *rng, step=self.keep_step)
        return self.decode(params)

    def _on_grid(self, value: float, rng: tuple[float, float]) -> float:
        value = min(max(float(value), rng[0]), rng[1])
        if self.keep_step is None:
            return value
        return round(rng[0] + round((value - rng[0]) / self.keep_step) * self.keep_step, 10)

    def cuts(self, params: dict[str, float]) -> list[int]:
        qs = sorted(float(params[f"q{j}"]) for j in range(1, self.levels))
        return [j + min(self.room - 1, max(0, math.floor(q * self.room))) for j, q in enumerate(qs, start=1)]

    def threshold(self, cut: int) -> float:
        """A threshold with exactly `cut` distinct complexities above it: the midpoint of its gap."""
        above, below = self.distinct[cut - 1], self.distinct[cut]
        mid = (above + below) / 2
        return mid if below <= mid < above else below  # level j holds H > t: `below` itself is exact

    def decode(self, params: dict[str, float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
        thresholds = tuple(self.threshold(c) for c in self.cuts(params))
        keeps = tuple(
            self._on_grid(params[f"keep{i}"], self.top_keep_range if i == 1 else self.keep_range)
            for i in range(1, self.levels + 1)
        )
        return thresholds, keeps

    def encode(self, thresholds: Sequence[float], keep_ratios: Sequence[float]) -> dict[str, float]:
        """Parameters for a given configuration (warm starts): the same partition of the calibration set
        where it leaves no level empty, else the nearest one that does; keep ratios clipped into range
        and rounded to the grid."""
        if len(thresholds) != self.levels - 1 or len(keep_ratios) != self.levels:
            raise ValueError(f"a {self.levels}-level search needs {self.levels - 1} thresholds and {self.levels} ratios")
        params: dict[str, float] = {}
        prev = 0
        for j, t in enumerate(thresholds, start=1):
            above = sum(1 for d in self.distinct if d > t)
            cut = min(max(above, prev + 1, j), len(self.distinct) - self.levels + j)  # feasible, increasing
            prev = cut
            params[f"q{j}"] = (cut - j + 0.5) / self.room
        for i, k in enumerate(keep_ratios, start=1):
            params[f"keep{i}"] = self._on_grid(k, self.top_keep_range if i == 1 else self.keep_range)
        return params
