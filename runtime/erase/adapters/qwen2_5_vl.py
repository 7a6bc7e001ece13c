"""Qwen2.5-VL plumbing (transformers 5.x `Qwen2_5_VLForConditionalGeneration`).

Also the base of the Qwen3-VL adapter: both families patchify images the same
way, place them with `mm_token_type_ids` and M-RoPE, and encode them through
`model.model.get_image_features(pixel_values, image_grid_thw)`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .. import _hf
from ..errors import EraseError
from ..packing import Repack
from ..pairwise import received_attention
from ..pixels import CLIP_MEAN, CLIP_STD, token_entropy, unpatchify
from ..profile import Fingerprint
from .base import PrefillInputs, register_adapter
from .common import MultimodalAdapter, Restore, is_model_type, scatter_features, split_slots, wrap_image_features

__all__ = ["CLIP_MEAN", "CLIP_STD", "Qwen25VLAdapter"]


@register_adapter(is_model_type("qwen2_5_vl"))
class Qwen25VLAdapter(MultimodalAdapter):
    family = "qwen2_5_vl"
    model_types = ("qwen2_5_vl",)
    supports_pixel_site = True
    supports_vision_attention = True
    # Every released Qwen2/2.5-VL processor normalises with the OpenAI CLIP statistics.
    image_mean: tuple[float, ...] = CLIP_MEAN
    image_std: tuple[float, ...] = CLIP_STD

    def __init__(self, model: nn.Module):
        super().__init__(model)
        vc = model.config.vision_config
        self.patch_size = vc.patch_size
        self.merge_size = vc.spatial_merge_size
        self.temporal_patch_size = vc.temporal_patch_size

    @classmethod
    def fingerprint_from_config(cls, config: Any) -> Fingerprint:
        vc, tc = config.vision_config, config.get_text_config()
        return Fingerprint(cls.family, vc.patch_size * vc.spatial_merge_size, tc.num_hidden_layers, tc.hidden_size)

    # ---- structure
    def vision_module(self) -> nn.Module:
        return self.mm.visual

    def watch_vision_input(self, callback: Callable[[dict[str, Any]], None]) -> Restore:
        def seen(pixel_values, image_grid_thw=None, *args, **kwargs):
            callback({"pixel_values": pixel_values, "image_grid_thw": image_grid_thw})

        return wrap_image_features(self.mm, seen)

    # ---- prefill
    def prepare_prefill(self, call: _hf.CallArgs, captured: Callable[[], dict[str, Any] | None]) -> PrefillInputs:
        input_ids, attention, embeds, encoded, vision = self.prefill_start(
            call,
            captured,
            lambda: self.mm.get_image_features(call["pixel_values"], call["image_grid_thw"], return_dict=True),
        )
        grid_thw = vision["image_grid_thw"]
        features = _hf.pooled_per_image(encoded)
        image_mask = input_ids == self.mm.config.image_token_id
        embeds = scatter_features(embeds, image_mask, torch.cat(features, dim=0))

        position_ids = call["position_ids"]
        if position_ids is None:
            position_ids = _hf.mrope_positions(self.mm, call, input_ids, grid_thw, embeds)
        if position_ids.ndim == 3 and position_ids.shape[0] == 4:
            position_ids = position_ids[1:]  # the text row is rebuilt after pruning

        m = self.merge_size
        tokens_per_image = (grid_thw.prod(-1) // (m * m)).tolist()
        if tokens_per_image != [int(f.shape[0]) for f in features]:
            raise EraseError("the captured vision input does not match the image features of this prompt")
        slots = split_slots(image_mask, tokens_per_image)
        _, grids = self.images_from_vision(vision, with_pixels=False)
        return PrefillInputs(embeds, position_ids, attention, slots, vision, grids, self.token_features(encoded))

    # ---- the vision encoder's attention (AdaVTP, Polymorphic)
    def attention_block(self) -> nn.Module:
        """The ViT block whose attention ranks tokens: the last full-attention one (no [CLS] token here)."""
        return self.mm.visual.blocks[self.model.config.vision_config.fullatt_block_indexes[-1]]

    def watch_vision_attention(self, callback: Callable[[torch.Tensor], None]) -> Any:
        """Per ViT patch (in the block's order), the attention it receives from its image's patches."""
        attn = self.attention_block().attn
        rope = _hf.vision_rotary(attn)

        def pre(module, args, kwargs):
            hidden, cu_seqlens, (cos, sin) = _hf.vision_attention_inputs(args, kwargs)
            with torch.no_grad():
                n = hidden.shape[0]
                q, k, _ = module.qkv(hidden).reshape(n, 3, module.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
                q, k = rope(q, k, cos, sin)
                out = torch.empty(n, dtype=torch.float64, device=hidden.device)
                bounds = cu_seqlens.tolist()
                for a, b in zip(bounds[:-1], bounds[1:]):  # one full-attention span per image
                    out[a:b] = received_attention(q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), module.scaling)
            callback(out)

        return attn.register_forward_pre_hook(pre, with_kwargs=True)

    def token_attention(self, raw: torch.Tensor, vision: dict[str, Any]) -> list[torch.Tensor]:
        """Mean over each token's 2x2 patch group, in row-major token order, split per image."""
        grid = vision["image_grid_thw"]
        unit = self.merge_size**2
        if raw.numel() != int(grid.prod(-1).sum()):
            raise EraseError("the vision encoder's attention does not cover this prompt's images")
        groups = self.unwindow(raw.reshape(-1, unit).mean(dim=1), grid)
        return list(groups.split((grid.prod(-1) // unit).tolist()))

    def unwindow(self, groups: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Patch groups from the window order the ViT blocks see back to row-major token order."""
        window_index, _ = _hf.vision_window_index(grid, self.merge_size, self.mm.visual.window_size, self.patch_size)
        return groups[torch.argsort(window_index.to(groups.device))]

    def image_features(self, inputs: dict[str, Any]) -> list[torch.Tensor]:
        with torch.no_grad():
            encoded = self.mm.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"], return_dict=True)
        return _hf.pooled_per_image(encoded)

    def token_features(self, encoded: Any) -> list[torch.Tensor]:
        """Per-image-token tensors the LLM consumes later (none for Qwen2.5-VL)."""
        return []

    def images_from_vision(
        self, vision: dict[str, Any], with_pixels: bool = True
    ) -> tuple[list[np.ndarray | None], list[tuple[int, int]]]:
        """Each image's resized pixels (HxWx3 uint8), and its LLM token grid."""
        m = self.merge_size
        images, grids = [], []
        for (t, h, w), rows in zip(vision["image_grid_thw"].tolist(), self.image_pixels(vision)):
            grids.append((h // m, w // m))
            if not with_pixels:
                images.append(None)
                continue
            rgb = unpatchify(
                rows[: h * w],
                (h, w),
                patch_size=self.patch_size,
                merge_size=m,
                temporal_patch_size=self.temporal_patch_size,
                mean=self.image_mean,
                std=self.image_std,
            )
            images.append(rgb)
        return images, grids

    def image_pixels(self, vision: dict[str, Any]) -> list[torch.Tensor]:
        """Each image's `pixel_values` rows (t * h * w of them, images in order)."""
        out, row = [], 0
        for t, h, w in vision["image_grid_thw"].tolist():
            out.append(vision["pixel_values"][row : row + t * h * w])
            row += t * h * w
        return out

    def patch_entropies(self, vision: dict[str, Any], rounding: str) -> list[np.ndarray]:
        """Each image's patch entropies straight from its `pixel_values` rows (no image is rebuilt)."""
        return [
            token_entropy(
                rows[: h * w], (h, w), merge_size=self.merge_size, temporal_patch_size=self.temporal_patch_size,
                mean=self.image_mean, std=self.image_std, rounding=rounding,
            )
            for (_, h, w), rows in zip(vision["image_grid_thw"].tolist(), self.image_pixels(vision))
        ]

    # ---- Stage 1 before the vision encoder (stage1_site="pixels")
    def kept_patch_rows(self, grid: torch.Tensor, keep: list[np.ndarray], device: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Kept tokens (indices over all images), their patch rows (whole merge groups), and the token count."""
        unit = self.merge_size**2
        kept_global, offset = [], 0
        for (t, h, w), k in zip(grid.tolist(), keep):
            kept_global.append(torch.as_tensor(k, dtype=torch.long) + offset)
            offset += t * h * w // unit
        kept = torch.cat(kept_global).to(device)
        rows = (kept[:, None] * unit + torch.arange(unit, device=device)).flatten()
        return kept, rows, offset

    def kept_seqlens(self, keep: list[np.ndarray], device: Any) -> torch.Tensor:
        """Full-attention spans of the vision tower: one per image, over its kept patches."""
        per_image = [int(len(k)) * self.merge_size**2 for k in keep]
        return torch.tensor([0, *np.cumsum(per_image)], dtype=torch.int32, device=device)

    def prune_vision_input(
        self, args: tuple, kwargs: dict[str, Any], keep: list[np.ndarray]
    ) -> tuple[tuple, dict[str, Any]]:
        """Feed the ViT only the 2x2 patch groups of kept tokens, with their own positions and windows."""
        pixel_values = args[0] if args else kwargs.pop("hidden_states")
        grid = args[1] if len(args) > 1 else kwargs["grid_thw"]
        unit = self.merge_size**2
        kept_global, rows, offset = self.kept_patch_rows(grid, keep, pixel_values.device)

        visual = self.mm.visual
        positions = _hf.vision_position_ids(grid, self.merge_size)[rows.to(grid.device)]
        window_index, cu_windows = _hf.vision_window_index(grid, self.merge_size, visual.window_size, self.patch_size)
        compact = torch.full((offset,), -1, dtype=torch.long)
        compact[kept_global.cpu()] = torch.arange(kept_global.numel())
        # tokens per window in window order, from the patch-unit boundaries
        sizes = (cu_windows[1:] - cu_windows[:-1]).tolist()
        window_of = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes) // unit)
        order = compact[window_index.cpu()]
        alive = order >= 0
        counts = torch.bincount(window_of[alive], minlength=len(sizes))
        cu = torch.cat([torch.zeros(1, dtype=torch.long), (counts[counts > 0] * unit).cumsum(0)])
        new_kwargs = {
            **kwargs,
            "grid_thw": grid,
            "position_ids": positions,
            "cu_seqlens": self.kept_seqlens(keep, pixel_values.device),
            "window_index": order[alive].to(pixel_values.device),
            "cu_window_seqlens": cu.to(dtype=torch.int32, device=pixel_values.device),
        }
        return (pixel_values[rows],), new_kwargs

    def expand_tokens(self, kept: torch.Tensor, keep: list[np.ndarray], grid: torch.Tensor) -> torch.Tensor:
        """[kept tokens, D] -> [all tokens, D], zeros for the dropped ones."""
        unit = self.merge_size**2
        totals = [t * h * w // unit for t, h, w in grid.tolist()]
        full = kept.new_zeros(sum(totals), kept.shape[-1])
        offset, start = 0, 0
        for total, k in zip(totals, keep):
            idx = torch.as_tensor(k, dtype=torch.long, device=kept.device) + offset
            full[idx] = kept[start : start + len(k)]
            start += len(k)
            offset += total
        return full

    def expand_vision_output(self, output: Any, keep: list[np.ndarray], grid: torch.Tensor) -> Any:
        """Put the kept tokens' features back at full size (zeros elsewhere) for the model's own split."""
        output.pooler_output = self.expand_tokens(output.pooler_output, keep, grid)
        return output

    def prefill_kwargs(self, call: _hf.CallArgs, inputs: PrefillInputs, repack: Repack) -> dict[str, Any]:
        positions = repack.positions(inputs.position_ids)
        text = repack.text_positions().to(positions.device)[None]
        return call.replaced(
            _hf.without_images(call),
            input_ids=None,
            inputs_embeds=repack.seq(inputs.inputs_embeds),
            attention_mask=repack.valid.long(),
            position_ids=torch.cat([text, positions], dim=0),
        )
