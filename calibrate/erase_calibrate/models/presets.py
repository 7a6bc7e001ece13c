"""Architecture presets: Qwen2.5-VL shapes built with random weights.

A preset is a config object fed to the same model class real checkpoints load
into (`Qwen2_5_VLForConditionalGeneration`), so the code paths (ViT window
attention, merger, M-RoPE, SDPA, the KV cache) are the real ones; only the
weights are random. Speed does not depend on the weights' values, accuracy
does: never read quality from a preset.

- `qwen2.5-vl-7b`, `qwen2.5-vl-3b`: the published shapes (for a GPU; the 7B is
  8.29 B parameters, 15.45 GiB in bf16).
- `qwen2.5-vl-7b-mini`, `qwen2.5-vl-3b-mini`: reduced width, the full depth (28 /
  36 LLM layers, so the shipped profile's Stage 2 layers exist), the same head
  size ratio and MLP ratio, a small ViT; they run on a laptop CPU.
- `tiny`: a toy of the 7B's depth for tests.

Registered as the model source `preset`: `models.load("tiny")` builds one (random weights, the
offline tokenizer and image-only processor); its identity has no revision.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from erase import EraseError

from .processor import build_processor, build_tokenizer, special_token_ids
from .registry import DTYPES, Located, LoadOptions, ModelSource, register

PATCH_SIZE = 14
MERGE_SIZE = 2
TOKEN_PX = PATCH_SIZE * MERGE_SIZE  # pixels per LLM vision token, per side


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    profile: str  # the shipped profile whose layers and thresholds apply
    # LLM
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int | None  # None: the offline tokenizer's size
    tie_embeddings: bool
    # vision tower
    vit_depth: int
    vit_hidden: int
    vit_heads: int
    vit_intermediate: int
    vit_fullatt: tuple[int, ...]
    rope_theta: float = 1000000.0
    max_positions: int = 128000

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "qwen2.5-vl-7b",
            "Qwen2.5-VL-7B shapes, random weights (8.29 B parameters; GPU)",
            "qwen2.5-vl-7b",
            hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944, vocab=152064, tie_embeddings=False,
            vit_depth=32, vit_hidden=1280, vit_heads=16, vit_intermediate=3420, vit_fullatt=(7, 15, 23, 31),
        ),
        Preset(
            "qwen2.5-vl-3b",
            "Qwen2.5-VL-3B shapes, random weights (3.75 B parameters; GPU)",
            "qwen2.5-vl-3b",
            hidden=2048, layers=36, heads=16, kv_heads=2, intermediate=11008, vocab=151936, tie_embeddings=True,
            vit_depth=32, vit_hidden=1280, vit_heads=16, vit_intermediate=3420, vit_fullatt=(7, 15, 23, 31),
        ),
        # Reduced width: head_dim 64 (half the real 128), MLP 4x wide (real: 5.3x; a
        # little narrower so a 2-core CPU runs 4096 tokens in seconds), GQA ratio as
        # close as 8 heads allow (7B: 7 -> 4; 3B: 8 -> 8); a 16k vocabulary keeps the LM
        # head's share of a decode step near the real one (~7%). ViT: 4 blocks of 128
        # wide, window attention with full attention in the last (as the real ViT's
        # every 8th of 32 blocks); it costs the same for every method.
        # At this width attention is a larger share of prefill than in the real model
        # (n^2 d against n d^2), so pruning gains more here than it would at 3584.
        Preset(
            "qwen2.5-vl-7b-mini",
            "Qwen2.5-VL-7B depth (28 layers) at reduced width 512, small ViT, random weights (CPU)",
            "qwen2.5-vl-7b",
            hidden=512, layers=28, heads=8, kv_heads=2, intermediate=2048, vocab=16384, tie_embeddings=False,
            vit_depth=4, vit_hidden=128, vit_heads=2, vit_intermediate=344, vit_fullatt=(3,),
        ),
        Preset(
            "qwen2.5-vl-3b-mini",
            "Qwen2.5-VL-3B depth (36 layers) at reduced width 512, small ViT, random weights (CPU)",
            "qwen2.5-vl-3b",
            hidden=512, layers=36, heads=8, kv_heads=1, intermediate=2048, vocab=16384, tie_embeddings=True,
            vit_depth=4, vit_hidden=128, vit_heads=2, vit_intermediate=344, vit_fullatt=(3,),
        ),
        Preset(
            "tiny",
            "toy Qwen2.5-VL of the 7B's depth (28 layers x 64 wide) for tests",
            "qwen2.5-vl-7b",
            hidden=64, layers=28, heads=4, kv_heads=2, intermediate=128, vocab=None, tie_embeddings=False,
            vit_depth=2, vit_hidden=32, vit_heads=2, vit_intermediate=64, vit_fullatt=(1,),
        ),
    )
}

def mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies over (t, h, w) like Qwen's [16, 24, 24] for 128."""
    half = head_dim // 2
    if half < 3:
        raise ValueError(f"head_dim {head_dim} too small for M-RoPE")
    t = max(1, round(half * 16 / 64))
    h = (half - t) // 2
    return [t, h, half - t - h]


def build_config(preset: Preset, tokenizer: PreTrainedTokenizerFast, attn_implementation: str = "sdpa") -> Qwen2_5_VLConfig:
    ids = special_token_ids(tokenizer)
    vocab = preset.vocab if preset.vocab is not None else len(tokenizer)
    if vocab < len(tokenizer):
        raise ValueError(f"preset {preset.name}: vocabulary {vocab} is smaller than the tokenizer's {len(tokenizer)}")
    text_config = dict(
        vocab_size=vocab,
        hidden_size=preset.hidden,
        intermediate_size=preset.intermediate,
        num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads,
        num_key_value_heads=preset.kv_heads,
        max_position_embeddings=preset.max_positions,
        rope_parameters={"rope_type": "default", "rope_theta": preset.rope_theta, "mrope_section": mrope_section(preset.head_dim)},
        rms_norm_eps=1e-6,
        tie_word_embeddings=preset.tie_embeddings,
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision_config = dict(
        depth=preset.vit_depth,
        hidden_size=preset.vit_hidden,
        intermediate_size=preset.vit_intermediate,
        num_heads=preset.vit_heads,
        out_hidden_size=preset.hidden,
        patch_size=PATCH_SIZE,
        spatial_merge_size=MERGE_SIZE,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=list(preset.vit_fullatt),
        in_channels=3,
        tokens_per_second=2,
    )
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=preset.tie_embeddings,
    )
    config._attn_implementation = attn_implementation
    return config


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def build_preset_model(
    preset: Preset,
    tokenizer: PreTrainedTokenizerFast,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
    seed: int = 0,
) -> Qwen2_5_VLForConditionalGeneration:
    """A random-weight model of the preset's shapes, built directly on `device` in `dtype`."""
    config = build_config(preset, tokenizer, attn_implementation)
    torch.manual_seed(seed)
    if device.startswith("cuda"):
        torch.cuda.manual_seed_all(seed)
    with torch.device(device), _default_dtype(dtype), torch.no_grad():
        model = Qwen2_5_VLForConditionalGeneration(config)
    model = model.to(device=device, dtype=dtype).eval()
    gc, text = model.generation_config, config.get_text_config()
    gc.eos_token_id, gc.pad_token_id, gc.bos_token_id, gc.do_sample = text.eos_token_id, text.pad_token_id, None, False
    return model


def default_tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()


def _locate(spec: str, revision: str | None) -> Located:
    if revision is not None:
        raise EraseError(f"--revision applies to hub ids; {spec!r} is a preset (random weights)")
    tokenizer = build_tokenizer()
    return Located(spec, build_config(PRESETS[spec], tokenizer), None, extra=tokenizer)


def _open(spec: str, located: Located, options: LoadOptions) -> tuple[Any, Any]:
    tokenizer = located.extra
    model = build_preset_model(
        PRESETS[spec], tokenizer, device=options.device, dtype=DTYPES[options.dtype],
        attn_implementation=options.attn_implementation, seed=options.seed,
    )
    bounds = {k: v for k, v in (("min_pixels", options.min_pixels), ("max_pixels", options.max_pixels)) if v is not None}
    return model, build_processor(tokenizer, **bounds)


SOURCE = register(
    ModelSource("preset", lambda spec: spec in PRESETS, _locate, _open, shipped_profile=lambda spec, fp: PRESETS[spec].profile)
)
