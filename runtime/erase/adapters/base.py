"""What the engine needs from a model family: where images enter, nothing of the method.

An adapter knows where the vision tokens are, how the model merges image
features into its input embeddings and builds positions, and which modules
are its entry, vision tower and language model. It holds no per-call state:
everything a call needs is handed to it. The decoder layers' plumbing is
shared (`erase.decoder`), the schedule is the engine's (`erase.engine`), and
transformers internals are read only through `erase._hf`. A new architecture
is one subclass registered with `register_adapter`, and passes the
conformance suite in `erase.testing`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .. import _hf
from ..packing import Repack
from ..profile import Fingerprint


@dataclass
class PrefillInputs:
    """The multimodal prompt with vision features merged in, before any pruning."""

    inputs_embeds: torch.Tensor  # [B, L, D]
    position_ids: torch.Tensor  # [R, B, L] the model's positions (M-RoPE rows)
    attention: torch.Tensor  # [B, L] bool, False on padding
    image_slots: list[list[torch.Tensor]]  # per sample, per image: the slots of its tokens, row-major order
    vision: dict[str, Any]  # what `images_from_vision` reads the resized pixels from (only when needed)
    image_grid: list[tuple[int, int]]  # per image (batch order): token grid (rows, cols)
    # Per-image-token tensors the language model consumes later, in prompt order
    # (e.g. Qwen3-VL's deep-stack features, one [image tokens, D] tensor per layer).
    token_features: list[torch.Tensor] = field(default_factory=list)


class Adapter(ABC):
    family: str = ""
    model_types: tuple[str, ...] = ()  # `config.model_type` values the adapter serves
    position_rows: int = 3  # rows of the position ids the LLM rotates with (3: M-RoPE, 1: RoPE)
    supports_pixel_site: bool = False  # implements prune_vision_input / expand_vision_output
    supports_vision_attention: bool = False  # implements watch_vision_attention / token_attention / image_features

    def __init__(self, model: nn.Module):
        self.model = model

    # ---- identity
    @classmethod
    @abstractmethod
    def fingerprint_from_config(cls, config: Any) -> Fingerprint:
        """The architecture fingerprint of a model config (no weights needed)."""

    def fingerprint(self) -> Fingerprint:
        return self.fingerprint_from_config(self.model.config)

    def pixels_per_token(self) -> int:
        return self.fingerprint().pixels_per_token

    def num_layers(self) -> int:
        return len(self.text_model().layers)

    def hidden_size(self) -> int:
        return self.fingerprint().hidden_size

    # ---- structure
    @abstractmethod
    def entry_module(self) -> nn.Module:
        """The module whose forward receives input_ids, pixel values, masks and the cache."""

    @abstractmethod
    def text_model(self) -> nn.Module:
        """The language model: `.layers` of Llama-style decoder layers, `.config`, `.rotary_emb`."""

    @abstractmethod
    def vision_module(self) -> nn.Module:
        """The vision encoder (stage1_site="pixels" hooks it)."""

    # ---- images
    @abstractmethod
    def watch_vision_input(self, callback: Callable[[dict[str, Any]], None]) -> Any:
        """Call `callback` with the image inputs (pixels, grids) each time images are encoded.

        Returns an object with `.remove()`.
        """

    @abstractmethod
    def images_from_vision(
        self, vision: dict[str, Any], with_pixels: bool = True
    ) -> tuple[list[Any], list[tuple[int, int]]]:
        """Per image: resized pixels (HxWx3 or HxW uint8; None without `with_pixels`), and the LLM token grid."""

    @abstractmethod
    def image_pixels(self, vision: dict[str, Any]) -> list[torch.Tensor]:
        """Per image: its `pixel_values` as the processor made them (views, no copy)."""

    def patch_entropies(self, vision: dict[str, Any], rounding: str) -> list[np.ndarray]:
        """Per image: Stage 1's patch entropies over its token grid (rows x cols, float64).

        This default rebuilds each image; adapters override it to score `pixel_values` in place.
        """
        from .. import stage1

        images, grids = self.images_from_vision(vision)
        return [stage1.patch_entropy_rgb(px, px.shape[0] // g[0], rounding) for px, g in zip(images, grids)]

    def has_images(self, call: _hf.CallArgs) -> bool:
        return _hf.images_in(call) and not _hf.videos_in(call)

    # ---- prefill
    @abstractmethod
    def prepare_prefill(self, call: _hf.CallArgs, captured: Callable[[], dict[str, Any] | None]) -> PrefillInputs:
        """Merge vision features into the prompt; `captured()` gives the latest vision input."""

    @abstractmethod
    def prefill_kwargs(self, call: _hf.CallArgs, inputs: PrefillInputs, repack: Repack) -> dict[str, Any]:
        """The entry module's kwargs for the Stage-1-pruned sequence."""

    def layer_output(self, idx: int, hidden: torch.Tensor, rows: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor | None:
        """After decoder layer `idx` in prefill: a replacement output, or None.

        `rows` [B, L] gives, per slot of the current (pruned) layout, the image
        token it holds (its row in `features`), -1 elsewhere.
        """
        return None

    # ---- what AdaVTP and Polymorphic rank tokens by (scorers with uses_attention)
    def watch_vision_attention(self, callback: Callable[[torch.Tensor], None]) -> Any:
        """Call `callback` with the attention of the vision encoder's chosen block, each time the encoder runs.

        What is handed over is the adapter's own (per ViT patch, in the block's
        order); `token_attention` turns it into per-token values. Returns an
        object with `.remove()`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not expose its vision encoder's attention")

    def token_attention(self, raw: torch.Tensor, vision: dict[str, Any]) -> list[torch.Tensor]:
        """Per image (batch order): the attention each of its LLM tokens receives, [tokens] in prompt order."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its vision encoder's attention")

    def image_features(self, inputs: dict[str, Any]) -> list[torch.Tensor]:
        """Per image: the features the LLM receives for it, [tokens, D] in prompt order (a processor output in)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its image features")

    # ---- Stage 1 before the vision encoder (stage1_site="pixels")
    def prune_vision_input(self, args: tuple, kwargs: dict[str, Any], keep: list[np.ndarray]) -> tuple[tuple, dict]:
        raise NotImplementedError(f"{type(self).__name__} does not support stage1_site='pixels'")

    def expand_vision_output(self, output: Any, keep: list[np.ndarray], grid: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not support stage1_site='pixels'")


_REGISTRY: list[tuple[Callable[[nn.Module], bool], type[Adapter]]] = []


def register_adapter(matches: Callable[[nn.Module], bool]) -> Callable[[type[Adapter]], type[Adapter]]:
    def deco(cls: type[Adapter]) -> type[Adapter]:
        _REGISTRY.append((matches, cls))
        return cls

    return deco


def adapter_for(model: nn.Module) -> Adapter | None:
    for matches, cls in _REGISTRY:
        if matches(model):
            return cls(model)
    return None


def supported_models() -> list[str]:
    return [cls.__name__ for _, cls in _REGISTRY]


def adapter_class_for_config(config: Any) -> type[Adapter] | None:
    """The adapter class serving a config's `model_type`, if any."""
    model_type = getattr(config, "model_type", None)
    for _, cls in _REGISTRY:
        if model_type in cls.model_types:
            return cls
    return None
