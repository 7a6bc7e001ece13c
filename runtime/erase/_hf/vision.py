"""Vision-tower helpers: positions, windows and interpolation (stage1_site="pixels"); what the attention of a
vision block is given (the attention AdaVTP and Polymorphic rank tokens by)."""

from __future__ import annotations

import importlib
from typing import Any

import torch
from transformers import vision_utils

from ..errors import EraseError
from .version import where


def vision_position_ids(grid: torch.Tensor, merge_size: int) -> torch.Tensor:
    return vision_utils.get_vision_position_ids(grid, merge_size)


def vision_window_index(grid: torch.Tensor, merge_size: int, window_size: int, patch_size: int) -> tuple[Any, Any]:
    return vision_utils.get_vision_window_index(grid, merge_size, window_size, patch_size)


def vision_interpolation(grid: torch.Tensor, visual: Any, merge_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return vision_utils.get_vision_interpolation_indices_and_weights(
        grid,
        num_grid_per_side=visual.num_grid_per_side,
        mode=visual.interpolation_mode,
        align_corners=visual.interpolation_align_corners,
        spatial_merge_size=merge_size,
    )


def vision_rotary(attention: Any) -> Any:
    """`apply_rotary_pos_emb_vision` of the modeling module that defines a Qwen vision attention."""
    modeling = importlib.import_module(type(attention).__module__)
    rope = getattr(modeling, "apply_rotary_pos_emb_vision", None)
    if rope is None:
        raise EraseError(f"{modeling.__name__} has no apply_rotary_pos_emb_vision{where()}")
    return rope


def vision_attention_inputs(args: tuple, kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """What a Qwen vision block hands its attention: normed hidden states [seq, dim], cu_seqlens, (cos, sin)."""
    hidden = args[0] if args else kwargs.get("hidden_states")
    cu_seqlens = args[1] if len(args) > 1 else kwargs.get("cu_seqlens")
    rotary = kwargs.get("position_embeddings")
    if hidden is None or cu_seqlens is None or rotary is None:
        raise EraseError(
            f"the vision attention was called without hidden states, cu_seqlens or position_embeddings{where()}"
        )
    return hidden, cu_seqlens, rotary


def vision_feature_layer(config: Any, num_layers: int) -> int:
    """InternVL: the 0-based ViT layer whose output the model takes as image features (`vision_feature_layer`)."""
    chosen = getattr(config, "vision_feature_layer", -1)
    if not isinstance(chosen, int):
        raise EraseError(f"ERASE needs one vision_feature_layer, got {chosen!r}{where()}")
    layer = chosen % (num_layers + 1) - 1  # hidden_states[0] is the embeddings, [i] the output of layer i - 1
    if layer < 0:
        raise EraseError(f"vision_feature_layer {chosen} is the ViT's embeddings: no attention layer produces it")
    return layer
