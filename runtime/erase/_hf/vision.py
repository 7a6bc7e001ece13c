"""Vision-tower position, window and interpolation helpers (stage1_site="pixels")."""

from __future__ import annotations

from typing import Any

import torch
from transformers import vision_utils


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
