"""M-RoPE position ids as the Qwen models compute them from the processor's outputs."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from ..errors import EraseError
from .kwargs import CACHE_NAMES, CallArgs
from .version import where


def mrope_positions(mm: Any, call: CallArgs, input_ids: torch.Tensor, grid_thw: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
    """[3 or 4, B, L] positions of the unpruned prompt, from `mm_token_type_ids` and the image grids."""
    if call.get("mm_token_type_ids") is None:
        raise EraseError(
            "ERASE needs mm_token_type_ids (the processor returns it) or position_ids to place image tokens"
        )
    params = inspect.signature(mm.compute_3d_position_ids).parameters
    cache_kw = next((n for n in CACHE_NAMES if n in params), None)
    if cache_kw is None:
        raise EraseError(f"{type(mm).__name__}.compute_3d_position_ids takes no cache argument{where()}")
    positions = mm.compute_3d_position_ids(
        input_ids=input_ids,
        image_grid_thw=grid_thw,
        video_grid_thw=None,
        inputs_embeds=embeds,
        attention_mask=call["attention_mask"],
        mm_token_type_ids=call.get("mm_token_type_ids"),
        **{cache_kw: call.cache},
    )
    if positions is None or positions.ndim != 3 or positions.shape[-1] != input_ids.shape[1]:
        raise EraseError(f"{type(mm).__name__} computed no M-RoPE positions for this prompt{where()}")
    return positions
