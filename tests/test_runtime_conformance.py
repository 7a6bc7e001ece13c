"""The conformance suite (`erase.testing.conformance`) on a tiny random model of each family.

Proven against oracles, per architecture: keep-all gives exactly the unpatched output; a pruned
run equals the unpatched model with the pruned tokens masked out of attention; a batch equals its
samples run one by one; decoding uses the unpruned run's positions and the KV cache holds only
what was kept; Stage 1 on the pixels read back from `pixel_values` equals scoring the image
directly. A new architecture is one subclass here.
"""

from __future__ import annotations

import numpy as np

from erase import stage1
from erase.testing.conformance import AdapterConformance
from tiny_models import INTERNVL_TILE, build_internvl_processor, build_qwen3_processor, build_tiny_internvl, build_tiny_qwen3vl
from tiny_qwen import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, build_processor, build_tiny_qwen25vl


class TestQwen25VL(AdapterConformance):
    pixel_range = (DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS)

    def build_processor(self):
        return build_processor()

    def build_model(self, tokenizer, attn_implementation, dtype):
        return build_tiny_qwen25vl(tokenizer=tokenizer, attn_implementation=attn_implementation, dtype=dtype)


class TestQwen3VL(AdapterConformance):
    pixel_range = (4 * 32 * 32, 64 * 32 * 32)

    def build_processor(self):
        return build_qwen3_processor()

    def build_model(self, tokenizer, attn_implementation, dtype):
        return build_tiny_qwen3vl(tokenizer, attn_implementation=attn_implementation, dtype=dtype)


class TestInternVL(AdapterConformance):
    def build_processor(self):
        return build_internvl_processor()

    def build_model(self, tokenizer, attn_implementation, dtype):
        return build_tiny_internvl(tokenizer, attn_implementation=attn_implementation, dtype=dtype)

    def score_image(self, image, profile, processor):
        """The processor's own tiling of the raw image, every tile's tokens in one ranking."""
        from transformers.image_utils import SizeDict

        ip = processor.image_processor
        arr = np.asarray(image.convert("RGB"))
        size = SizeDict(height=INTERNVL_TILE, width=INTERNVL_TILE)
        tiles = ip.crop_image_to_patches(arr, ip.min_patches, ip.max_patches, patch_size=size, resample=ip.resample)
        px = profile.model.fingerprint.pixels_per_token
        entropy = np.concatenate([stage1.patch_entropy(stage1.grayscale(np.asarray(t)), px) for t in tiles])
        return stage1.select(entropy, profile)
