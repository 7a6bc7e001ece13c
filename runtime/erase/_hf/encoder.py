"""What the vision encoders hand the language model, normalised across releases.

- From 5.20 `generate()` encodes images before prefill and passes the outputs
  as `mm_encoder_outputs={"image": ...}`; before, the prefill call carries
  `pixel_values` and the model encodes them itself.
- `pooler_output` is one tensor per image (Qwen) or one [tiles, tokens, D]
  tensor (InternVL).
- Qwen3-VL's deep-stack features are, per deep-stack layer, one tensor over
  all images (up to 5.19) or one tensor per image (from 5.20).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import EraseError
from .kwargs import ENCODER_OUTPUTS, CallArgs
from .version import where


def image_features_of(call: CallArgs) -> Any | None:
    """The image encoder output generate() already computed for this call, if any."""
    encoded = call.kwargs.get(ENCODER_OUTPUTS)
    if encoded is None:
        return None
    if not isinstance(encoded, dict):
        raise EraseError(f"{ENCODER_OUTPUTS} is a {type(encoded).__name__}, not a dict of modalities{where()}")
    return encoded.get("image")


def videos_in(call: CallArgs) -> bool:
    encoded = call.kwargs.get(ENCODER_OUTPUTS) or {}
    return call.get("pixel_values_videos") is not None or encoded.get("video") is not None


def images_in(call: CallArgs) -> bool:
    return call.get("pixel_values") is not None or image_features_of(call) is not None


def without_images(call: CallArgs) -> dict[str, Any]:
    """The entry kwargs with every image input removed (the engine merged them itself)."""
    out = dict(call.kwargs)
    for key in ("pixel_values", "image_grid_thw", ENCODER_OUTPUTS, "mm_token_type_ids"):
        if key in out:
            out[key] = None
    return out


def _tensor_list(value: Any, what: str) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, torch.Tensor) for v in value):
        return list(value)
    raise EraseError(f"{what} is a {type(value).__name__}, not tensors{where()}")


def pooled_per_image(encoded: Any) -> list[torch.Tensor]:
    """The merged features of each image (Qwen: [tokens, D] per image)."""
    pooled = getattr(encoded, "pooler_output", None)
    if pooled is None:
        raise EraseError(f"the vision encoder output has no pooler_output{where()}")
    return _tensor_list(pooled, "pooler_output")


def deepstack_per_layer(encoded: Any) -> list[torch.Tensor]:
    """Qwen3-VL: per deep-stack layer, the features of every image token in prompt order."""
    layers = getattr(encoded, "deepstack_features", None)
    if layers is None:
        raise EraseError(f"the Qwen3-VL vision output has no deepstack_features{where()}")
    return [torch.cat(_tensor_list(layer, "deepstack_features"), dim=0) for layer in layers]
