"""Qwen3-VL plumbing (transformers 5.x `Qwen3VLForConditionalGeneration`).

Qwen3-VL takes images like Qwen2.5-VL (patchified rows, `mm_token_type_ids`,
M-RoPE) with 16 px patches (32 px per LLM token), a vision tower without
windows, per-head q/k norms in the LLM (handled by the shared decoder
plumbing), and **deep-stack** features: the vision tower also emits one
feature per image token for each of the first few LLM layers, which the text
model adds to the image positions after those layers. The adapter takes that
addition over: the model never sees the images (the engine merges them), and
after each deep-stack layer the engine asks `layer_output` to add the features
at the image tokens the current, pruned layout still holds. So Stage 1 and a Stage 2 layer inside the
deep-stack range drop the dropped tokens' deep-stack features with them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .. import _hf
from ..pixels import HALF
from .base import register_adapter
from .common import is_model_type
from .qwen2_5_vl import Qwen25VLAdapter


@register_adapter(is_model_type("qwen3_vl"))
class Qwen3VLAdapter(Qwen25VLAdapter):
    family = "qwen3_vl"
    model_types = ("qwen3_vl",)
    # The Qwen3-VL processors normalise with mean 0.5 and std 0.5.
    image_mean: tuple[float, ...] = HALF
    image_std: tuple[float, ...] = HALF

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.deepstack_layers = len(model.config.vision_config.deepstack_visual_indexes)

    # ---- the vision encoder's attention: every block attends fully, there are no windows
    def attention_block(self) -> nn.Module:
        return self.mm.visual.blocks[-1]

    def unwindow(self, groups: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return groups

    # ---- deep-stack features follow the token layout
    def token_features(self, encoded: Any) -> list[torch.Tensor]:
        return _hf.deepstack_per_layer(encoded)

    def layer_output(self, idx: int, hidden: torch.Tensor, rows: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor | None:
        if idx >= min(self.deepstack_layers, len(features)):
            return None
        where = rows >= 0
        add = features[idx].to(hidden.device, hidden.dtype)
        # the model's own deep-stack step (add at the image tokens), on the slots still kept
        new = hidden.clone()
        new[where, :] = new[where, :] + add[rows[where]]
        return new

    # ---- Stage 1 before the vision encoder (stage1_site="pixels")
    def prune_vision_input(
        self, args: tuple, kwargs: dict[str, Any], keep: list[np.ndarray]
    ) -> tuple[tuple, dict[str, Any]]:
        """Feed the ViT only the 2x2 patch groups of kept tokens, with their own positions (no windows)."""
        pixel_values = args[0] if args else kwargs.pop("hidden_states")
        grid = args[1] if len(args) > 1 else kwargs["grid_thw"]
        _, rows, _ = self.kept_patch_rows(grid, keep, pixel_values.device)
        visual = self.mm.visual
        indices, weights = _hf.vision_interpolation(grid, visual, self.merge_size)
        at = rows.to(grid.device)
        new_kwargs = {
            **kwargs,
            "grid_thw": grid,
            "interp_indices": indices[at],
            "interp_weights": weights[at],
            "position_ids": _hf.vision_position_ids(grid, self.merge_size)[at],
            "cu_seqlens": self.kept_seqlens(keep, pixel_values.device),
        }
        return (pixel_values[rows],), new_kwargs

    def expand_vision_output(self, output: Any, keep: list[np.ndarray], grid: torch.Tensor) -> Any:
        output = super().expand_vision_output(output, keep, grid)
        output.deepstack_features = [self.expand_tokens(f, keep, grid) for f in output.deepstack_features]
        return output
