"""Tiny, offline Qwen3-VL and InternVL fixtures: tokenizer, image-only processor, random model.

Like ``tiny_qwen`` (Qwen2.5-VL), everything builds from code in well under a second, with no
model hub and no torchvision.

Qwen3-VL
--------
- ``build_qwen3_processor(tokenizer=None)``: the Qwen tokenizer and ``ImageTextProcessor``
  around ``Qwen2VLImageProcessorPil`` with Qwen3-VL's settings (16 px patches, merge 2,
  mean/std 0.5): 32 px per LLM token, a 224x224 image gives 7x7 = 49 tokens.
- ``build_tiny_qwen3vl(...)``: random ``Qwen3VLForConditionalGeneration`` (LLM 64 wide x 4
  layers with q/k norms; ViT 3 blocks whose outputs are the deep-stack features added after
  LLM layers 0, 1 and 2, like the real models).

InternVL
--------
- ``build_internvl_tokenizer()``: the Qwen tokenizer plus ``<img>``, ``</img>``,
  ``<IMG_CONTEXT>`` and ``<video>``, with the attributes ``InternVLProcessor`` reads.
- ``ImageOnlyInternVLProcessor``: ``InternVLProcessor`` without its video processor (which
  needs torchvision); same prompt expansion: ``<img>`` + 16 context tokens per tile + ``</img>``.
- ``build_internvl_processor(tokenizer=None)``: ``GotOcr2ImageProcessorPil`` cropping 112 px
  tiles (up to 4) plus a thumbnail, ImageNet mean/std (the real InternVL3 uses 448 px tiles).
- ``build_tiny_internvl(...)``: random ``InternVLForConditionalGeneration`` with a Qwen2 LLM
  (64 wide x 4 layers), ViT patch 14 on 112 px tiles, pixel shuffle 0.5: 28 px per token,
  16 tokens per tile.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    GotOcr2ImageProcessorPil,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLProcessor,
    PreTrainedTokenizerFast,
    Qwen2VLImageProcessorPil,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)
from transformers import ProcessorMixin

from erase_calibrate.models.processor import CHAT_TEMPLATE, ImageTextProcessor, build_tokenizer, special_token_ids
from erase_calibrate.models.presets import mrope_section as _mrope_section

QWEN3_TOKEN_PX = 32
INTERNVL_TILE = 112
INTERNVL_TOKENS_PER_TILE = (INTERNVL_TILE // 28) ** 2
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
INTERNVL_TOKENS = ("<img>", "</img>", "<IMG_CONTEXT>", "<video>")

# The InternVL3-hf chat template, reduced to what the tests use: each image is one
# <IMG_CONTEXT> placeholder, which the processor expands.
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _finish(model: Any, config: Any, seed: int, dtype: torch.dtype) -> Any:
    model.generation_config.eos_token_id = config.get_text_config().eos_token_id
    model.generation_config.pad_token_id = config.get_text_config().pad_token_id
    model.generation_config.bos_token_id = None
    model.generation_config.do_sample = False
    return model.to(dtype=dtype).eval()


def _text_config(tokenizer: PreTrainedTokenizerFast, num_layers: int, hidden: int, heads: int, kv_heads: int) -> dict:
    ids = special_token_ids(tokenizer)
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        # Default init (std 0.02) collapses activations; 0.1 keeps logits varied yet small,
        # so float32 rounding stays far below the 1e-5 oracle tolerance.
        initializer_range=0.1,
    )


# --------------------------------------------------------------------------------------
# Qwen3-VL
# --------------------------------------------------------------------------------------
def build_qwen3_processor(
    tokenizer: PreTrainedTokenizerFast | None = None, min_tokens: int = 4, max_tokens: int = 64
) -> ImageTextProcessor:
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer()
    px = QWEN3_TOKEN_PX
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=16,
        merge_size=2,
        temporal_patch_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        min_pixels=min_tokens * px * px,
        max_pixels=max_tokens * px * px,
    )
    return ImageTextProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def build_tiny_qwen3vl(
    tokenizer: PreTrainedTokenizerFast | None = None,
    num_layers: int = 4,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    deepstack_layers: int = 3,
    seed: int = 0,
    attn_implementation: str = "sdpa",
    dtype: torch.dtype = torch.float32,
) -> Qwen3VLForConditionalGeneration:
    """A random-weight Qwen3-VL in eval mode; same ``seed`` -> identical weights."""
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer()
    ids = special_token_ids(tokenizer)
    head_dim = hidden // heads
    text = _text_config(tokenizer, num_layers, hidden, heads, kv_heads)
    text.update(
        head_dim=head_dim,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 5000000.0,
            "mrope_section": _mrope_section(head_dim),
            "mrope_interleaved": True,
        },
    )
    vision = dict(
        depth=deepstack_layers,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=hidden,
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        num_position_embeddings=64,
        deepstack_visual_indexes=list(range(deepstack_layers)),
        initializer_range=0.1,
    )
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    config.initializer_range = 0.1
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    return _finish(Qwen3VLForConditionalGeneration(config), config, seed, dtype)


# --------------------------------------------------------------------------------------
# InternVL
# --------------------------------------------------------------------------------------
def build_internvl_tokenizer() -> PreTrainedTokenizerFast:
    tok = build_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": list(INTERNVL_TOKENS)})
    # the attributes InternVLProcessor reads (the real tokenizer declares them as extra special tokens)
    tok.start_image_token, tok.end_image_token, tok.context_image_token, tok.video_token = INTERNVL_TOKENS
    ids = tok.convert_tokens_to_ids(list(INTERNVL_TOKENS))
    tok.start_image_token_id, tok.end_image_token_id, tok.context_image_token_id, tok.video_token_id = ids
    return tok


class ImageOnlyInternVLProcessor(InternVLProcessor):
    """``InternVLProcessor`` without a video processor (the stock one needs torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, image_seq_length: int = 256, chat_template=None, **kwargs):
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)
        self.image_seq_length = image_seq_length
        self.start_image_token = tokenizer.start_image_token
        self.end_image_token = tokenizer.end_image_token
        self.start_image_token_id = tokenizer.start_image_token_id
        self.end_image_token_id = tokenizer.end_image_token_id
        self.image_token = tokenizer.context_image_token
        self.video_token = tokenizer.video_token
        self.image_token_id = tokenizer.context_image_token_id
        import re

        self.multimodal_pattern = re.compile(
            f"(?P<image>{re.escape(self.image_token)})|(?P<video>{re.escape(self.video_token)})"
        )


def build_internvl_processor(
    tokenizer: PreTrainedTokenizerFast | None = None, max_tiles: int = 4
) -> ImageOnlyInternVLProcessor:
    tokenizer = tokenizer if tokenizer is not None else build_internvl_tokenizer()
    image_processor = GotOcr2ImageProcessorPil(
        crop_to_patches=True,
        min_patches=1,
        max_patches=max_tiles,
        size={"height": INTERNVL_TILE, "width": INTERNVL_TILE},
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )
    return ImageOnlyInternVLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_length=INTERNVL_TOKENS_PER_TILE,
        chat_template=INTERNVL_CHAT_TEMPLATE,
    )


def build_tiny_internvl(
    tokenizer: PreTrainedTokenizerFast | None = None,
    num_layers: int = 4,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    seed: int = 0,
    attn_implementation: str = "sdpa",
    dtype: torch.dtype = torch.float32,
) -> InternVLForConditionalGeneration:
    """A random-weight InternVL (Qwen2 LLM) in eval mode; same ``seed`` -> identical weights."""
    tokenizer = tokenizer if tokenizer is not None else build_internvl_tokenizer()
    text = _text_config(tokenizer, num_layers, hidden, heads, kv_heads)
    text.update(model_type="qwen2", rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, tie_word_embeddings=False)
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=INTERNVL_TILE,
        patch_size=14,
        initializer_range=0.1,
    )
    config = InternVLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=tokenizer.context_image_token_id,
        image_seq_length=INTERNVL_TOKENS_PER_TILE,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )
    config.initializer_range = 0.1
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    return _finish(InternVLForConditionalGeneration(config), config, seed, dtype)
