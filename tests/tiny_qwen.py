"""Tiny, offline Qwen2.5-VL fixtures: tokenizer, image-only processor and a random-weight model.

Everything here is built from code in well under a second and needs no model hub
(``HF_HUB_OFFLINE=1`` is fine) and no torchvision.

Public API
----------
- ``build_tokenizer()``: byte-level BPE trained on a small built-in corpus, with the Qwen
  special tokens and the Qwen2.5-VL chat template. Deterministic.
- ``build_image_processor(min_pixels=..., max_pixels=...)``: ``Qwen2VLImageProcessorPil`` with
  small pixel bounds (a 224x224 image gives 8x8 = 64 LLM vision tokens).
- ``ImageTextProcessor``: image-only ``ProcessorMixin`` (the stock ``Qwen2_5_VLProcessor``
  needs a video processor, which needs torchvision). Returns ``input_ids``, ``attention_mask``,
  ``pixel_values``, ``image_grid_thw`` and ``mm_token_type_ids`` like the real processor.
- ``build_processor(tokenizer=None, **image_processor_kwargs)``.
- ``build_tiny_config(...)`` / ``build_tiny_qwen25vl(...)``: random
  ``Qwen2_5_VLForConditionalGeneration`` whose special token ids match the tokenizer.
- ``save_tiny(dirpath, ...)``: writes model, tokenizer and processor with ``save_pretrained``.
- ``load_tiny_processor(dirpath)``: reloads the processor written by ``save_tiny``.
- ``register_auto_processor()``: opt-in ``AutoProcessor`` registration (see below).
- ``make_image(height, width, seed=0)`` / ``make_messages(...)``: deterministic test inputs.
- ``make_inputs(processor, [(messages, images), ...])``: padded processor output for a batch.
- ``example_cases()``: named prompt sets (single, batch3_left_padded, two_images,
  image_after_text) for parametrised tests.

Run ``python tests/tiny_qwen.py`` for a self-check (forward + generate over the matrix of
batching / image layout / attention implementation / dtype, and the save/load round trip).

Note on ``AutoProcessor`` (checked with transformers 5.23, offline): without registration,
``AutoProcessor.from_pretrained(dir)`` does NOT fail on a ``save_tiny`` directory: it cannot
resolve ``processor_class: "ImageTextProcessor"`` and silently falls back to returning the
*tokenizer*. ``register_auto_processor()`` calls
``AutoProcessor.register(Qwen2_5_VLConfig, ImageTextProcessor, exist_ok=True)``; after that
``processor_class_from_name`` finds the class by name in the registered extras and
``AutoProcessor.from_pretrained(dir)`` returns an ``ImageTextProcessor``. It is opt-in because it
changes process-global state (a Qwen2.5-VL directory with no ``processor_class`` anywhere would
then also get this class; real checkpoints name ``Qwen2_5_VLProcessor`` and still need
torchvision). ``ImageTextProcessor.from_pretrained(dir)`` / ``load_tiny_processor(dir)`` work
without any registration.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)

# The tokenizer, chat template and image-only processor live in the product
# (erase_calibrate.models.processor) so benchmarks build them without the tests folder.
from erase.testing import make_image, make_messages  # noqa: F401  (re-exported for the tests)
from erase_calibrate.models.processor import CHAT_TEMPLATE, SPECIAL_TOKENS, ImageTextProcessor, build_tokenizer

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "DEFAULT_MIN_PIXELS",
    "DEFAULT_MAX_PIXELS",
    "ImageTextProcessor",
    "build_tokenizer",
    "build_image_processor",
    "build_processor",
    "build_tiny_config",
    "build_tiny_qwen25vl",
    "save_tiny",
    "load_tiny_processor",
    "register_auto_processor",
    "make_image",
    "make_messages",
    "make_inputs",
    "example_cases",
]

# Token budget of the tiny image processor: a token covers 28x28 px (patch 14 x merge 2).
# 224x224 -> 8x8 = 64 tokens (the max); anything smaller than 56x56 is upscaled to >= 4 tokens.
DEFAULT_MIN_PIXELS = 4 * 28 * 28
DEFAULT_MAX_PIXELS = 64 * 28 * 28


# --------------------------------------------------------------------------------------
# Processor
# --------------------------------------------------------------------------------------
def build_image_processor(
    min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS, **kwargs: Any
) -> Qwen2VLImageProcessorPil:
    """Qwen2-VL PIL image processor (patch 14, temporal patch 2, merge 2) with small bounds."""
    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels, **kwargs)


def build_processor(
    tokenizer: PreTrainedTokenizerFast | None = None, **image_processor_kwargs: Any
) -> ImageTextProcessor:
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer()
    return ImageTextProcessor(
        image_processor=build_image_processor(**image_processor_kwargs),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def load_tiny_processor(dirpath: str | os.PathLike) -> ImageTextProcessor:
    """Reload a processor written by ``save_tiny`` (offline, no registration needed)."""
    return ImageTextProcessor.from_pretrained(str(dirpath), local_files_only=True)


def register_auto_processor() -> None:
    """Make ``AutoProcessor.from_pretrained(dir)`` return ``ImageTextProcessor`` (process-global)."""
    from transformers import AutoProcessor

    AutoProcessor.register(Qwen2_5_VLConfig, ImageTextProcessor, exist_ok=True)


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------
def build_tiny_config(
    tokenizer: PreTrainedTokenizerFast | None = None,
    num_layers: int = 4,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    vision_depth: int = 2,
    vision_hidden: int = 32,
    vision_heads: int = 2,
    intermediate: int | None = None,
    vision_intermediate: int | None = None,
    attn_implementation: str = "sdpa",
) -> Qwen2_5_VLConfig:
    """A tiny Qwen2.5-VL config, built by the product's own preset builder (erase-bench)."""
    from erase_calibrate.models.presets import Preset, build_config

    tokenizer = tokenizer if tokenizer is not None else build_tokenizer()
    if hidden % heads:
        raise ValueError("hidden must be divisible by heads")
    if heads % kv_heads:
        raise ValueError("heads must be divisible by kv_heads")
    # Real 7B: full attention in ViT blocks 7, 15, 23, 31 (every 8th). Keep the last block full
    # so both window and full attention paths run (depth 1 -> [0]).
    fullatt = tuple(sorted({vision_depth - 1} | set(range(7, vision_depth, 8))))
    preset = Preset(
        name="test-tiny", description="tests", profile="qwen2.5-vl-7b",
        hidden=hidden, layers=num_layers, heads=heads, kv_heads=kv_heads, intermediate=intermediate or 2 * hidden,
        vocab=None, tie_embeddings=False, vit_depth=vision_depth, vit_hidden=vision_hidden, vit_heads=vision_heads,
        vit_intermediate=vision_intermediate or 2 * vision_hidden, vit_fullatt=fullatt,
    )
    return build_config(preset, tokenizer, attn_implementation)


def build_tiny_qwen25vl(
    num_layers: int = 4,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    vision_depth: int = 2,
    vision_hidden: int = 32,
    seed: int = 0,
    attn_implementation: str = "sdpa",
    dtype: torch.dtype = torch.float32,
    tokenizer: PreTrainedTokenizerFast | None = None,
) -> Qwen2_5_VLForConditionalGeneration:
    """A random-weight Qwen2.5-VL in eval mode; same ``seed`` -> identical weights."""
    config = build_tiny_config(
        tokenizer=tokenizer,
        num_layers=num_layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        vision_depth=vision_depth,
        vision_hidden=vision_hidden,
        attn_implementation=attn_implementation,
    )
    # Default init uses std=0.02: activations collapse and every greedy step picks the same
    # token. 0.1 gives logits that vary with the input yet stay small (|logit| < ~4), so float32
    # rounding stays well under the 1e-5 oracle tolerance.
    config.initializer_range = 0.1
    config.text_config.initializer_range = 0.1
    config.vision_config.initializer_range = 0.1
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = config.get_text_config().eos_token_id
    model.generation_config.pad_token_id = config.get_text_config().pad_token_id
    model.generation_config.bos_token_id = None
    model.generation_config.do_sample = False
    model = model.to(dtype=dtype)
    model.eval()
    return model


def save_tiny(
    dirpath: str | os.PathLike,
    model: Qwen2_5_VLForConditionalGeneration | None = None,
    processor: ImageTextProcessor | None = None,
    **model_kwargs: Any,
) -> tuple[Qwen2_5_VLForConditionalGeneration, ImageTextProcessor]:
    """Write model + tokenizer + processor (image processor config, chat template) to ``dirpath``.

    Reload with ``Qwen2_5_VLForConditionalGeneration.from_pretrained(dirpath)`` and
    ``load_tiny_processor(dirpath)`` (or ``AutoTokenizer`` / ``AutoImageProcessor``).
    """
    dirpath = str(dirpath)
    processor = processor if processor is not None else build_processor()
    model = model if model is not None else build_tiny_qwen25vl(tokenizer=processor.tokenizer, **model_kwargs)
    model.save_pretrained(dirpath)
    processor.save_pretrained(dirpath)
    return model, processor


# --------------------------------------------------------------------------------------
# Inputs and self-check (make_image / make_messages live in erase.testing)
# --------------------------------------------------------------------------------------
def make_inputs(processor: ImageTextProcessor, prompts: Sequence[tuple[list, list]]) -> Any:
    """Processor output (``BatchFeature`` of tensors) for ``[(messages, [PIL images]), ...]``, padded."""
    texts = [processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m, _ in prompts]
    images = [im for _, ims in prompts for im in ims]
    return processor(text=texts, images=images or None, padding=True, return_tensors="pt")


def example_cases() -> dict[str, list[tuple[list, list]]]:
    """Named prompt sets covering the layouts the toolkit must handle (inputs for ``make_inputs``).

    single: one 224x224 image (64 vision tokens) before the text.
    batch3_left_padded: 3 prompts, different image sizes and layouts (one with two images),
        left padded.
    two_images: two images of different sizes in one prompt.
    image_after_text: the image comes after the instruction.
    """
    return {
        "single": [(make_messages(), [make_image(224, 224)])],
        "batch3_left_padded": [
            (make_messages("Describe the image."), [make_image(224, 224, 1)]),
            (make_messages("What is this?", image_first=False), [make_image(112, 168, 2)]),
            (
                make_messages("How many people are in the photo? Count them.", n_images=2),
                [make_image(84, 140, 3), make_image(196, 112, 4)],
            ),
        ],
        "two_images": [
            (make_messages("Compare the two images.", n_images=2), [make_image(224, 224, 5), make_image(140, 84, 6)])
        ],
        "image_after_text": [(make_messages("Read the chart.", image_first=False), [make_image(168, 224, 7)])],
    }


def _self_check() -> None:  # pragma: no cover - exercised by running the module
    import tempfile
    import time

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    tok = build_tokenizer()
    assert tok.get_vocab() == build_tokenizer().get_vocab(), "tokenizer not deterministic"
    processor = build_processor(tok)
    print(f"tokenizer: {len(tok)} tokens, specials {[tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]}")

    cases = example_cases()
    for attn in ("sdpa", "eager"):
        for dtype in (torch.float32, torch.bfloat16):
            model = build_tiny_qwen25vl(attn_implementation=attn, dtype=dtype, tokenizer=tok)
            for name, prompts in cases.items():
                inputs = make_inputs(processor, prompts)
                with torch.no_grad():
                    out = model(**inputs)
                    gen = model.generate(**inputs, max_new_tokens=5, do_sample=False)
                assert out.logits.shape[:2] == inputs["input_ids"].shape
                assert torch.isfinite(out.logits).all()
                assert gen.shape == (inputs["input_ids"].shape[0], inputs["input_ids"].shape[1] + 5), gen.shape
                shape, grid = tuple(inputs["input_ids"].shape), inputs["image_grid_thw"].tolist()
                print(f"{attn:5s} {str(dtype):15s} {name:20s} ids{shape} grid{grid} -> {gen[:, -5:].tolist()}")

    with tempfile.TemporaryDirectory() as d:
        model, processor = save_tiny(d, processor=processor, seed=3)
        reloaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(d).eval()
        processor2 = load_tiny_processor(d)
        inputs = make_inputs(processor, cases["batch3_left_padded"])
        inputs2 = make_inputs(processor2, cases["batch3_left_padded"])
        for k in inputs:
            assert torch.equal(inputs[k], inputs2[k]), k
        with torch.no_grad():
            a, b = model(**inputs).logits, reloaded(**inputs2).logits
        assert torch.equal(a, b), (a - b).abs().max()
        print("save/load round trip: identical logits; files:", sorted(os.listdir(d)))
        from transformers import AutoProcessor

        register_auto_processor()
        register_auto_processor()  # idempotent
        auto = AutoProcessor.from_pretrained(d)
        assert isinstance(auto, ImageTextProcessor), type(auto)
        ids_auto = make_inputs(auto, cases["single"])["input_ids"]
        assert torch.equal(ids_auto, make_inputs(processor, cases["single"])["input_ids"])
        print("AutoProcessor after register_auto_processor():", type(auto).__name__)
    print(f"self-check ok in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    sys.exit(_self_check())
