"""Registries of the pruning methods: Stage 1 scorers and Stage 2 selectors.

Stage logic only: a scorer picks an image's kept tokens from what it is
given, a selector picks them inside the LLM; neither knows a model. A new
method is one registration here (or in a module that imports this one).

What a scorer is given is declared on it: patch entropy (`uses_entropy`), the
image's vision features as the LLM receives them (`uses_features`), the
attention each token receives in the vision encoder (`uses_attention`,
`Adapter.token_attention`), and statistics the profile holds for the method
(`reference`: the name of a `Profile.methods` field, required to apply it).
A scorer returns the kept row-major indices, or a `Merge` (kept indices and,
per token, the kept token whose slot carries it): merged tokens become the
mean of their cluster, in their centre's slot.

A Stage 2 selector either scores tokens by the instruction's attention at the
layer (`score`, then `choose`), or selects from the layer's output hidden
states (`select`, given a `HiddenChoice`), possibly merging (a `Merge`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from . import adavtp, polymorphic, stage1, stage2
from .baselines import random_keep, uniform_keep
from .merging import Merge

__all__ = [
    "HiddenChoice",
    "Merge",
    "STAGE1_SCORERS",
    "STAGE2_SELECTORS",
    "Stage1Scorer",
    "Stage2Selector",
    "TokenChoice",
    "register_stage1",
    "register_stage2",
    "stage1_scorer",
    "stage2_selector",
]


@dataclass(frozen=True)
class TokenChoice:
    """What a Stage 1 scorer sees of one image."""

    total: int  # tokens of the image
    k: int  # how many to keep
    entropy: np.ndarray | None  # per-token patch entropy; None unless the scorer uses it
    seed: int
    image_no: int  # position of the image in the batch
    features: torch.Tensor | None = None  # [total, C] the image's features as the LLM receives them
    attention: torch.Tensor | None = None  # [total] attention each token receives in the vision encoder
    reference: Any = None  # the profile's statistics for the scorer (`Profile.methods.<reference>`)
    image_key: int = 0  # for scorers that declare `keyed`: a key of the image's pixels (erase.pixels.content_key)


@dataclass(frozen=True)
class Stage1Scorer:
    name: str
    # sorted row-major indices, k of them; or a Merge whose kept indices number k
    choose: Callable[[TokenChoice], "np.ndarray | Merge"]
    uses_entropy: bool = False
    keeps_all: bool = False  # ignores the keep ratio (no Stage 1 pruning)
    uses_features: bool = False
    uses_attention: bool = False
    reference: str | None = None  # a `Profile.methods` field the profile must hold
    keyed: bool = False  # draws per image from `TokenChoice.image_key`: the same image, the same choice, in any batch


@dataclass(frozen=True)
class HiddenChoice:
    """What a hidden-state Stage 2 selector sees of one image at its layer."""

    vision: torch.Tensor  # [M, d] the layer's output at the image's tokens still present, in sequence order
    text: torch.Tensor  # [Q, d] the layer's output at the instruction's text tokens
    k: int  # tokens the image keeps


@dataclass(frozen=True)
class Stage2Selector:
    name: str
    # (queries [H, Q, D], keys [H, L, D], query slots [Q], valid keys [L], scaling) -> score per key [L]
    score: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor] | None = None
    choose: Callable[[torch.Tensor, int], torch.Tensor] = stage2.top_tokens
    # from the layer's hidden states instead: indices into HiddenChoice.vision, or a Merge over them
    select: Callable[[HiddenChoice], Merge] | None = None

    def __post_init__(self) -> None:
        if (self.score is None) == (self.select is None):
            raise ValueError(f"Stage 2 selector {self.name!r} needs exactly one of score (attention) or select (hidden states)")


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
register_stage1(
    Stage1Scorer("random", lambda c: random_keep(c.total, c.k, np.random.default_rng([c.seed, c.image_key])), keyed=True)
)
register_stage1(Stage1Scorer("uniform", lambda c: uniform_keep(c.total, c.k)))
register_stage1(Stage1Scorer("none", lambda c: np.arange(c.total, dtype=np.int64), keeps_all=True))

register_stage1(
    Stage1Scorer(
        "adavtp",
        lambda c: adavtp.select(c.features, c.attention, c.k, c.reference.erank_avg, c.reference.tau_max),
        uses_features=True,
        uses_attention=True,
        reference="adavtp",
    )
)
register_stage1(
    Stage1Scorer(
        "polymorphic", lambda c: polymorphic.stage1(c.features, c.attention, c.k), uses_features=True, uses_attention=True
    )
)

register_stage2(Stage2Selector("attention", stage2.key_scores))
register_stage2(Stage2Selector("polymorphic", select=lambda h: polymorphic.stage2(h.vision, h.text, h.k)))
