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

A local checkpoint directory loads with `from_pretrained` instead (`load_model`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from erase import EraseError

from ..offline_processor import build_tokenizer, special_token_ids

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


def looks_like_path(spec: str) -> bool:
    return os.sep in spec or spec.startswith(".") or Path(spec).exists()


def resolve(spec: str) -> Preset | Path:
    """A preset by name, or an existing checkpoint directory; a one-line EraseError otherwise."""
    if spec in PRESETS:
        return PRESETS[spec]
    if spec == "demo":  # the shipped trained checkpoint, found as the calibrator finds it
        from ..model_loading import resolve_model_path

        spec = resolve_model_path(spec)
    if looks_like_path(spec):
        path = Path(spec)
        if not path.is_dir():
            raise EraseError(f"--model {spec}: no such checkpoint directory")
        if not (path / "config.json").is_file():
            raise EraseError(f"--model {spec}: not a checkpoint directory (no config.json)")
        return path
    raise EraseError(f"unknown model {spec!r}: not a preset ({', '.join(PRESETS)}) and not a checkpoint directory")


def checkpoint_config(path: Path) -> Qwen2_5_VLConfig:
    """The config of a local checkpoint; a one-line EraseError unless it is a Qwen2.5-VL."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EraseError(f"--model {path}: cannot read config: {str(exc).splitlines()[0]}") from None
    if getattr(config, "model_type", None) != "qwen2_5_vl":
        raise EraseError(f"--model {path}: model_type {getattr(config, 'model_type', None)!r} is not supported (qwen2_5_vl)")
    return config


def load_checkpoint(
    path: Path, *, device: str = "cpu", dtype: torch.dtype = torch.float32, attn_implementation: str = "sdpa"
) -> tuple[Qwen2_5_VLForConditionalGeneration, PreTrainedTokenizerFast]:
    """Model and tokenizer of a local Qwen2.5-VL checkpoint, offline.

    The image processor is not taken from the checkpoint: the benchmark builds one
    whose pixel range keeps each synthetic image at exactly its token count (every
    Qwen2.5-VL processor normalises with the same CLIP statistics).
    """
    from transformers import AutoTokenizer
    from transformers import logging as hf_logging

    checkpoint_config(path)
    hf_logging.disable_progress_bar()
    try:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            str(path), dtype=dtype, attn_implementation=attn_implementation, local_files_only=True
        )
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - missing or corrupt weights fail in many ways; one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EraseError(f"--model {path}: cannot load: {first}") from None
    finally:
        hf_logging.enable_progress_bar()
    return model.to(device).eval(), tokenizer


def default_tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()
