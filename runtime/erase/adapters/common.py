"""What the adapters of transformers' decoder-only VLMs share.

Qwen2.5-VL, Qwen3-VL and InternVL (transformers 5.x) all hold a multimodal
model at `model.model` that merges the vision features, builds positions and
calls `language_model`. The family adapters add where images enter and how
positions are built.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch import nn

from ..errors import EraseError
from .. import _hf
from .base import Adapter


def is_model_type(model_type: str) -> Callable[[nn.Module], bool]:
    """Matches a ...ForConditionalGeneration (it has `.model`) of one `config.model_type`."""

    def matches(model: nn.Module) -> bool:
        return getattr(getattr(model, "config", None), "model_type", None) == model_type and hasattr(model, "model")

    return matches


class Restore:
    """A `.remove()` that runs `undo`, like a hook handle."""

    def __init__(self, undo: Callable[[], Any]):
        self.remove = undo


def wrap_image_features(mm: nn.Module, callback: Callable[..., None]) -> Restore:
    """Call `callback(*args, **kwargs)` with the arguments of every `mm.get_image_features` call.

    generate() encodes images before prefill and drops pixel_values from the
    prefill call, and the encoder casts them to the model dtype (bf16 would
    lose the exact pixels), so Stage 1 reads them where they enter. The
    wrapper is an instance attribute (generate() looks it up there) and keeps
    the original signature; removing it restores whatever was there before
    (e.g. another wrapper such as a feature cache).
    """
    original = mm.get_image_features

    @functools.wraps(original)
    def get_image_features(*args, **kwargs):
        callback(*args, **kwargs)
        return original(*args, **kwargs)

    shadowed = mm.__dict__.get("get_image_features")

    def restore() -> None:
        if shadowed is None:
            mm.__dict__.pop("get_image_features", None)
        else:
            mm.get_image_features = shadowed

    mm.get_image_features = get_image_features
    return Restore(restore)


def split_slots(image_mask: torch.Tensor, tokens_per_image: list[int]) -> list[list[torch.Tensor]]:
    """Per sample, per image: the slots of its tokens, images taken in batch order."""
    slots: list[list[torch.Tensor]] = []
    img = 0
    for b in range(image_mask.shape[0]):
        where = torch.nonzero(image_mask[b]).flatten()
        per, start = [], 0
        while start < where.numel():
            if img >= len(tokens_per_image):
                raise EraseError("the prompt has more image tokens than the images it was given")
            n = tokens_per_image[img]
            per.append(where[start : start + n])
            start += n
            img += 1
        slots.append(per)
    return slots


def scatter_features(embeds: torch.Tensor, image_mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Image features into the image-token slots, as the models' own `masked_scatter` does."""
    flat = features.to(embeds.device, embeds.dtype)
    if int(image_mask.sum()) != flat.shape[0]:
        raise EraseError(
            f"image tokens and image features do not match: {int(image_mask.sum())} tokens, {flat.shape[0]} features"
        )
    return embeds.masked_scatter(image_mask.unsqueeze(-1).expand_as(embeds), flat)


class MultimodalAdapter(Adapter):
    """A ...ForConditionalGeneration whose `model` merges images and calls `language_model`."""

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.mm = model.model

    def entry_module(self) -> nn.Module:
        return self.mm

    def text_model(self) -> nn.Module:
        return self.mm.language_model

    def prefill_start(
        self, call: _hf.CallArgs, captured: Callable[[], dict[str, Any] | None], encode: Callable[[], Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any, dict[str, Any]]:
        """input_ids, the bool padding mask, the token embeddings, the encoder output and the captured vision input.

        From transformers 5.20 `generate()` hands over the images already encoded; a plain
        forward (and older releases) encodes them here with `encode()` (the wrapped
        `get_image_features` captures the pixels).
        """
        input_ids = call["input_ids"]
        if input_ids is None:
            raise EraseError("ERASE needs input_ids (not only inputs_embeds) to find the image tokens")
        attention = call["attention_mask"]
        attention = torch.ones_like(input_ids, dtype=torch.bool) if attention is None else attention.bool()
        embeds = self.mm.get_input_embeddings()(input_ids)
        encoded = _hf.image_features_of(call)
        if encoded is None:
            encoded = encode()
        vision = captured()
        if vision is None:
            raise EraseError("ERASE saw no vision-encoder input for this prompt's images")
        return input_ids, attention, embeds, encoded, vision
