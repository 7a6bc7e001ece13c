"""How a pruning schedule runs: ERASE by default, baselines by setting fields.

Behaviour switches, not calibration results (those live in the profile).
"""

from __future__ import annotations

from dataclasses import dataclass

STAGE1_SCORERS = ("entropy", "random", "uniform", "none")


@dataclass(frozen=True)
class Strategy:
    """Knobs of the two-stage schedule.

    stage1: how Stage 1 ranks an image's tokens: "entropy" (ERASE), "random"
        (seeded), "uniform" (evenly spaced in row-major order) or "none" (keep all).
    stage1_keep_ratio: one keep ratio for every image instead of the profile's
        per-level ratio (baselines compare at equal ratios).
    stage2: run Stage 2 at all.
    stage2_layer: one 0-based layer for every image instead of the level's.
    evict: evict the dropped tokens' KV entries from layers 0..k (ERASE); off,
        they stay cached there and decoding still attends to them (FastV-style).
    seed: for stage1="random".
    """

    stage1: str = "entropy"
    stage1_keep_ratio: float | None = None
    stage2: bool = True
    stage2_layer: int | None = None
    evict: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        from . import _args  # EraseTypeError / EraseValueError (a ValueError, as before) naming the field

        _args.choice("stage1", self.stage1, STAGE1_SCORERS)
        _args.ratio("stage1_keep_ratio", self.stage1_keep_ratio)
        _args.flag("stage2", self.stage2)
        _args.flag("evict", self.evict)
        _args.whole("stage2_layer", self.stage2_layer, minimum=0, optional=True)
        _args.whole("seed", self.seed)


ERASE = Strategy()
STAGE1_ONLY = Strategy(stage2=False)
