"""The only code in ERASE that touches transformers internals.

Everything ERASE reads from transformers beyond its public model classes lives
here: the names under which forwards pass their arguments, the KV cache, mask
and rotary helpers, the vision-tower helpers, and the processor and encoder
output conventions. Per-release differences are resolved here, by feature
detection where possible and by version where not; the engine and the
adapters call these functions and never read a forward's raw kwargs.

Every reader is strict: an argument that should be there and is not, or a
cache of a type ERASE has not been tested on, raises `EraseError` naming the
installed transformers version instead of being skipped.
"""

from __future__ import annotations

from .cache import check_cache, evict_layers, layer_kv, layer_length, layer_lengths
from .encoder import deepstack_per_layer, image_features_of, images_in, pooled_per_image, videos_in, without_images
from .kwargs import ArgNames, CallArgs, call_args
from .masks import causal_mask
from .positions import mrope_positions
from .rotary import RotaryHelpers, rotary_helpers
from . import version
from .version import (
    OLDEST,
    NEWEST,
    UNTESTED_ENV,
    check_transformers,
    supported_range,
    transformers_version,
)
from .vision import (
    vision_attention_inputs,
    vision_feature_layer,
    vision_interpolation,
    vision_position_ids,
    vision_rotary,
    vision_window_index,
)

__all__ = [
    "NEWEST",
    "OLDEST",
    "UNTESTED_ENV",
    "ArgNames",
    "CallArgs",
    "RotaryHelpers",
    "call_args",
    "causal_mask",
    "check_cache",
    "check_transformers",
    "deepstack_per_layer",
    "evict_layers",
    "image_features_of",
    "images_in",
    "layer_kv",
    "layer_length",
    "layer_lengths",
    "mrope_positions",
    "pooled_per_image",
    "rotary_helpers",
    "supported_range",
    "transformers_version",
    "videos_in",
    "vision_attention_inputs",
    "vision_feature_layer",
    "vision_interpolation",
    "vision_position_ids",
    "vision_rotary",
    "vision_window_index",
    "without_images",
]
