"""How a pruning schedule runs: ERASE by default, baselines by name or by setting fields.

Behaviour switches, not calibration results (those live in the profile). The
named strategies that erase-bench, erase-eval and the demo compare are
defined once, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import polymorphic
from .methods import STAGE1_SCORERS, STAGE2_SELECTORS, stage1_scorer

FASTV_LAYER = 1  # FastV prunes after its layer K=2, i.e. inside the second decoder layer (0-based 1)


@dataclass(frozen=True)
class Strategy:
    """Knobs of the two-stage schedule.

    stage1: how Stage 1 ranks an image's tokens, a registered scorer
        (`erase.methods`): "entropy" (ERASE), "random" (seeded), "uniform"
        (evenly spaced in row-major order), "none" (keep all), "adavtp"
        (`erase.adavtp`) or "polymorphic" (`erase.polymorphic`, merges).
    stage1_keep_ratio: one keep ratio for every image instead of the profile's
        per-level ratio (baselines compare at equal ratios).
    stage2: run Stage 2 at all.
    stage2_layer: one 0-based layer for every image instead of the level's.
    stage2_selector: how Stage 2 picks tokens, a registered selector: "attention"
        (the instruction's attention at the layer) or "polymorphic" (rater
        alignment of the layer's hidden states, merges).
    evict: evict the dropped tokens' KV entries from layers 0..k (ERASE); off,
        they stay cached there and decoding still attends to them (FastV-style).
    seed: for stage1="random".
    """

    stage1: str = "entropy"
    stage1_keep_ratio: float | None = None
    stage2: bool = True
    stage2_layer: int | None = None
    stage2_selector: str = "attention"
    evict: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        from . import _args  # EraseTypeError / EraseValueError (a ValueError, as before) naming the field

        _args.choice("stage1", self.stage1, tuple(STAGE1_SCORERS))
        _args.choice("stage2_selector", self.stage2_selector, tuple(STAGE2_SELECTORS))
        _args.ratio("stage1_keep_ratio", self.stage1_keep_ratio)
        _args.flag("stage2", self.stage2)
        _args.flag("evict", self.evict)
        _args.whole("stage2_layer", self.stage2_layer, minimum=0, optional=True)
        _args.whole("seed", self.seed)

    @property
    def needs_entropy(self) -> bool:
        """Whether the image's patch entropy is used: to rank, for the level's ratio, or for its layer."""
        scorer = stage1_scorer(self.stage1)
        level_ratio = self.stage1_keep_ratio is None and not scorer.keeps_all
        level_layer = self.stage2 and self.stage2_layer is None
        return scorer.uses_entropy or level_ratio or level_layer


ERASE = Strategy()
STAGE1_ONLY = Strategy(stage2=False)

# Named strategies, given the final keep ratio (share of each image's tokens kept in the end).
NAMED: dict[str, Callable[[float], Strategy]] = {
    "erase": lambda final: ERASE,
    "stage1": lambda final: STAGE1_ONLY,
    "fastv": lambda final: Strategy(stage1="none", stage2_layer=FASTV_LAYER, evict=False),
    "random": lambda final: Strategy(stage1="random", stage1_keep_ratio=final, stage2=False),
    "uniform": lambda final: Strategy(stage1="uniform", stage1_keep_ratio=final, stage2=False),
    # AdaVTP prunes before the LLM only, to the final budget.
    "adavtp": lambda final: Strategy(stage1="adavtp", stage1_keep_ratio=final, stage2=False),
    # Polymorphic: about twice the budget after Stage 1, the budget after its fixed layer;
    # without eviction, like the in-prefill pruning of FastV (layers up to it keep their cache).
    "polymorphic": lambda final: Strategy(
        stage1="polymorphic",
        stage1_keep_ratio=min(1.0, polymorphic.STAGE1_FACTOR * final),
        stage2_layer=polymorphic.LAYER,
        stage2_selector="polymorphic",
        evict=False,
    ),
}


def named_strategy(name: str, final_keep_ratio: float) -> Strategy:
    """The strategy called `name` (a key of `NAMED`: "erase", "stage1", "fastv", "random", "uniform",
    "adavtp", "polymorphic") at a final keep ratio."""
    try:
        make = NAMED[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r} (known: {', '.join(NAMED)})") from None
    return make(final_keep_ratio)
