"""Rotary embedding and KV-head repetition, exactly as a decoder layer's own module applies them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import EraseError
from .version import where


@dataclass(frozen=True)
class RotaryHelpers:
    apply_rope: Callable  # (q, k, cos, sin) -> (q, k)
    repeat_kv: Callable  # (states [B, kv, L, D], n_rep) -> [B, kv * n_rep, L, D]


def rotary_helpers(attention: nn.Module) -> RotaryHelpers:
    """The helpers of the modeling module that defines `attention`'s class."""
    modeling = importlib.import_module(type(attention).__module__)
    rope = getattr(modeling, "apply_rotary_pos_emb", None)
    repeat = getattr(modeling, "repeat_kv", None)
    if rope is None or repeat is None:
        raise EraseError(f"{modeling.__name__} has no apply_rotary_pos_emb / repeat_kv{where()}")
    return RotaryHelpers(rope, repeat)
