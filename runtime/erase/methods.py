"""Registries of the pruning methods: Stage 1 scorers and Stage 2 selectors.

Stage logic only: a scorer picks an image's kept tokens from what it is
given, a selector scores tokens by attention; neither knows a model. A new
method is one registration here (or in a module that imports this one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import stage1, stage2
from .baselines import random_keep, uniform_keep


@dataclass(frozen=True)
class TokenChoice:
    """What a Stage 1 scorer sees of one image."""

    total: int  # tokens of the image
    k: int  # how many to keep
    entropy: np.ndarray | None  # per-token patch entropy; None unless the scorer uses it
    seed: int
    image_no: int  # position of the image in the batch (seeds the random scorer)


@dataclass(frozen=True)
class Stage1Scorer:
    name: str
    choose: Callable[[TokenChoice], np.ndarray]  # sorted row-major indices, k of them
    uses_entropy: bool = False
    keeps_all: bool = False  # ignores the keep ratio (no Stage 1 pruning)


@dataclass(frozen=True)
class Stage2Selector:
    name: str
    # (queries [H, Q, D], keys [H, L, D], query slots [Q], valid keys [L], scaling) -> score per key [L]
    score: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]
    choose: Callable[[torch.Tensor, int], torch.Tensor] = stage2.top_tokens


STAGE1_SCORERS: dict[str, Stage1Scorer] = {}
STAGE2_SELECTORS: dict[str, Stage2Selector] = {}


def register_stage1(scorer: Stage1Scorer) -> Stage1Scorer:
    if scorer.name in STAGE1_SCORERS:
        raise ValueError(f"a Stage 1 scorer named {scorer.name!r} is already registered")
    STAGE1_SCORERS[scorer.name] = scorer
    return scorer


def register_stage2(selector: Stage2Selector) -> Stage2Selector:
    if selector.name in STAGE2_SELECTORS:
        raise ValueError(f"a Stage 2 selector named {selector.name!r} is already registered")
    STAGE2_SELECTORS[selector.name] = selector
    return selector


def stage1_scorer(name: str) -> Stage1Scorer:
    try:
        return STAGE1_SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown Stage 1 scorer {name!r} (known: {', '.join(STAGE1_SCORERS)})") from None


def stage2_selector(name: str) -> Stage2Selector:
    try:
        return STAGE2_SELECTORS[name]
    except KeyError:
        raise ValueError(f"unknown Stage 2 selector {name!r} (known: {', '.join(STAGE2_SELECTORS)})") from None


register_stage1(Stage1Scorer("entropy", lambda c: stage1.top_k(c.entropy, c.k), uses_entropy=True))
register_stage1(Stage1Scorer("random", lambda c: random_keep(c.total, c.k, np.random.default_rng([c.seed, c.image_no]))))
register_stage1(Stage1Scorer("uniform", lambda c: uniform_keep(c.total, c.k)))
register_stage1(Stage1Scorer("none", lambda c: np.arange(c.total, dtype=np.int64), keeps_all=True))

register_stage2(Stage2Selector("attention", stage2.key_scores))
