"""The KV cache: ERASE reads and shortens `DynamicCache` layers, and refuses anything else.

transformers has no API to delete entries at given positions, so eviction
reassigns each layer's key and value tensors. That is only sound for plain
`DynamicLayer`s (static, sliding-window, quantized and offloaded layers keep
other state), so every other cache or layer type is refused by name.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from ..errors import EraseError
from .version import where


def check_cache(cache: Any) -> None:
    """None (use_cache=False) or a DynamicCache of plain dynamic layers; else one EraseError line."""
    if cache is None:
        return
    if not isinstance(cache, DynamicCache):
        raise EraseError(
            f"ERASE supports transformers' DynamicCache only, got {type(cache).__name__} "
            f"(leave cache_implementation unset){where()}"
        )
    for layer in cache.layers:
        if type(layer) is not DynamicLayer:
            raise EraseError(f"ERASE supports DynamicCache layers of type DynamicLayer only, got {type(layer).__name__}{where()}")


def layer_length(cache: Any, idx: int) -> int:
    """Entries cached for decoder layer `idx` (0 if it has none yet)."""
    if cache is None or len(cache.layers) <= idx:
        return 0
    keys = cache.layers[idx].keys
    return 0 if keys is None or keys.numel() == 0 else int(keys.shape[-2])


def layer_lengths(cache: Any) -> list[int]:
    return [layer_length(cache, i) for i in range(len(cache.layers))] if cache is not None else []


def layer_kv(cache: Any, idx: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """[B, kv_heads, L, D] keys and values of layer `idx`, or None when it holds nothing yet."""
    if layer_length(cache, idx) == 0:
        return None
    layer = cache.layers[idx]
    return layer.keys, layer.values


def evict_layers(cache: Any, upto: int, gather: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Replace the keys and values of layers 0..upto by `gather` of them (along the sequence)."""
    if cache is None:
        return
    for layer in cache.layers[: upto + 1]:
        layer.keys = gather(layer.keys)
        layer.values = gather(layer.values)
