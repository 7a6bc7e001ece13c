"""Attention masks as the decoder layers expect them, from transformers' own builder."""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

import torch
from transformers import masking_utils

from ..errors import EraseError
from .version import where


@lru_cache(maxsize=1)
def _cache_param() -> str:
    params = inspect.signature(masking_utils.create_causal_mask).parameters
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    raise EraseError(f"transformers' create_causal_mask takes no cache argument{where()}")


def causal_mask(config: Any, hidden: torch.Tensor, attention: torch.Tensor, cache: Any, layer_idx: int | None) -> Any:
    """The mask for `hidden` as queries over the cache plus themselves, `attention` [B, keys] marking valid keys."""
    return masking_utils.create_causal_mask(
        config=config,
        inputs_embeds=hidden,
        attention_mask=attention.long(),
        position_ids=None,
        layer_idx=layer_idx,
        **{_cache_param(): cache},
    )
