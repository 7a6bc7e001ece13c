"""Plumbing of Llama-style decoder layers, shared by every supported family.

Qwen2.5-VL, Qwen3-VL and InternVL (Qwen2 LLM) run `text.layers` of layers
with `input_layernorm`, `self_attn.q_proj/k_proj` (optional per-head
`q_norm/k_norm`) and rotary tables passed as `position_embeddings`, over a
`DynamicCache`. This module recomputes what a layer computes (rotated
queries, keys) and builds what later layers need after a prune (masks,
rotary tables, positions); transformers' own helpers come through `_hf`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import _hf
from .errors import EraseError
from .packing import Repack


class Decoder:
    def __init__(self, text: nn.Module):
        self.text = text
        self.layers = text.layers
        if "sliding_attention" in (getattr(text.config, "layer_types", None) or []):
            raise EraseError("ERASE does not support language models with sliding-window attention layers")
        self.names = _hf.call_args(self.layers[0], "layer")
        self.rotary = _hf.rotary_helpers(self.layers[0].self_attn)

    def __len__(self) -> int:
        return len(self.layers)

    def call(self, args: tuple, kwargs: dict[str, Any]) -> _hf.CallArgs:
        return _hf.CallArgs(self.names, args, kwargs)

    @staticmethod
    def _heads(attn: nn.Module, proj: nn.Module, norm_name: str, x: torch.Tensor) -> torch.Tensor:
        """[..., L, H, D] projected heads, with the per-head norm when the layer has one (Qwen3)."""
        h = proj(x).view(*x.shape[:-1], -1, attn.head_dim)
        norm = getattr(attn, norm_name, None)
        return norm(h) if norm is not None else h

    def rotated_queries(self, idx: int, call: _hf.CallArgs, slots: torch.Tensor, sample: int) -> torch.Tensor:
        """[H, Q, D] queries of one sample's `slots`, rotated, as the layer computes them."""
        layer = self.layers[idx]
        attn = layer.self_attn
        x = layer.input_layernorm(call.hidden[sample, slots])
        q = self._heads(attn, attn.q_proj, "q_norm", x).transpose(0, 1)
        cos, sin = call["position_embeddings"]
        q, _ = self.rotary.apply_rope(q[None], q[None], cos[sample, slots][None], sin[sample, slots][None])
        return q[0]

    def keys(self, idx: int, call: _hf.CallArgs) -> torch.Tensor:
        """[B, H, L, D] rotated keys of the layer (from its cache), KV heads repeated to the query heads."""
        layer = self.layers[idx]
        attn = layer.self_attn
        cached = _hf.layer_kv(call.cache, idx)
        if cached is not None:
            keys = cached[0]
        else:  # use_cache=False: recompute the layer's keys
            k = self._heads(attn, attn.k_proj, "k_norm", layer.input_layernorm(call.hidden)).transpose(1, 2)
            cos, sin = call["position_embeddings"]
            _, keys = self.rotary.apply_rope(k, k, cos, sin)
        if keys.shape[-2] != call.hidden.shape[1]:
            raise EraseError(
                f"layer {idx} holds {keys.shape[-2]} keys for {call.hidden.shape[1]} tokens after its prefill"
                f"{_hf.version.where()}"
            )
        return self.rotary.repeat_kv(keys, attn.num_key_value_groups)

    def scaling(self, idx: int) -> float:
        return float(self.layers[idx].self_attn.scaling)

    def mask(self, idx: int, hidden: torch.Tensor, attention: torch.Tensor, cache: Any) -> Any:
        """The attention mask layer `idx` expects, from a 2-D mask over its cache + queries."""
        return _hf.causal_mask(self.text.config, hidden, attention, cache, idx if idx < len(self) else None)

    def after_prune(
        self, idx: int, hidden: torch.Tensor, call: _hf.CallArgs, repack: Repack, attention: torch.Tensor
    ) -> dict[str, Any]:
        """Kwargs (mask, rotary tables, positions) for the layers after a prune at layer `idx`."""
        cos, sin = call["position_embeddings"]
        out = {
            "attention_mask": self.mask(idx + 1, hidden, attention, call.cache),
            "position_embeddings": (repack.seq(cos), repack.seq(sin)),
        }
        if call["position_ids"] is not None:
            out["position_ids"] = repack.text_positions().to(hidden.device)
        return {self.names.key(k): v for k, v in out.items()}

    def rotary_tables(self, hidden: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The text model's rotary tables for `positions`, to check what a decode step was given."""
        return self.text.rotary_emb(hidden, positions)
