"""The demo model: a tiny Qwen2.5-VL (the real architecture class) and where it ships.

The model is `Qwen2_5_VLForConditionalGeneration` with a small config, trained
from scratch on the synthetic tasks of `erase_calibrate.tasks.sources.demo` by
``python -m erase_calibrate.demo.train``. The trained checkpoint ships in
``data_samples/demo-model/`` (safetensors, config, tokenizer, image processor
config, chat template) and loads with ``from_pretrained`` like any real
checkpoint, with no model hub (``HF_HUB_OFFLINE=1``) and no torchvision.

Registered as the model source `demo` (`models.load("demo")`): it calibrates on the demo tasks
by default, and the shipped `demo` profile fits it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from erase import EraseError

from .hub import open_pretrained
from .identity import check_revision_option, load_config, model_revision
from .presets import TOKEN_PX, Preset, build_config
from .processor import ImageTextProcessor, build_processor, build_tokenizer
from .registry import Located, ModelSource, register

__all__ = [
    "DEMO_SPEC",
    "DemoSpec",
    "ENV_VAR",
    "MAX_PIXELS",
    "MIN_PIXELS",
    "build_demo_config",
    "build_demo_processor",
    "demo_model_path",
    "load_demo",
]

ENV_VAR = "ERASE_DEMO_MODEL"  # overrides where the demo checkpoint is looked for
MODEL_ID = "erase-demo/qwen2.5-vl-tiny"
NAME = "demo"  # what --model names it
# Fixed pixel budget: the demo tasks' 448 px images become 16 x 16 = 256 vision tokens exactly.
GRID = 16
MIN_PIXELS = MAX_PIXELS = GRID * GRID * TOKEN_PX * TOKEN_PX


@dataclass(frozen=True)
class DemoSpec:
    """Shapes of the demo model (LLM, then vision tower)."""

    hidden: int = 128
    layers: int = 6
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 384
    vit_depth: int = 2
    vit_hidden: int = 64
    vit_heads: int = 2
    vit_intermediate: int = 128
    vit_fullatt: tuple[int, ...] = (1,)
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


DEMO_SPEC = DemoSpec()


def demo_preset(spec: DemoSpec = DEMO_SPEC):
    """The spec as a preset, so one builder makes every tiny Qwen2.5-VL config."""
    return Preset(
        "demo", "the trained demo model's shapes", "demo",
        hidden=spec.hidden, layers=spec.layers, heads=spec.heads, kv_heads=spec.kv_heads, intermediate=spec.intermediate,
        vocab=None, tie_embeddings=False, vit_depth=spec.vit_depth, vit_hidden=spec.vit_hidden, vit_heads=spec.vit_heads,
        vit_intermediate=spec.vit_intermediate, vit_fullatt=spec.vit_fullatt, rope_theta=spec.rope_theta, max_positions=4096,
    )


def build_demo_config(tokenizer: PreTrainedTokenizerFast, spec: DemoSpec = DEMO_SPEC) -> Qwen2_5_VLConfig:
    """The demo's `Qwen2_5_VLConfig`; special token ids are the tokenizer's."""
    return build_config(demo_preset(spec), tokenizer)


def build_demo_processor(tokenizer: PreTrainedTokenizerFast | None = None) -> ImageTextProcessor:
    """The offline tokenizer and image-only processor with the demo's fixed pixel budget."""
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer()
    return build_processor(tokenizer, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)


def new_demo_model(tokenizer: PreTrainedTokenizerFast, spec: DemoSpec = DEMO_SPEC, seed: int = 0):
    """A freshly initialised (untrained) demo model in float32."""
    config = build_demo_config(tokenizer, spec)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    _set_generation_defaults(model)
    return model


def _set_generation_defaults(model: Any) -> None:
    gc = model.generation_config
    gc.eos_token_id = model.config.get_text_config().eos_token_id
    gc.pad_token_id = model.config.get_text_config().pad_token_id
    gc.bos_token_id = None
    gc.do_sample = False
    gc.max_new_tokens = 8


def demo_model_path() -> Path:
    """Where the shipped demo checkpoint lives: ``demo-model`` of the package data
    ``erase_calibrate.data_samples`` (the checkout's ``data_samples/demo-model``, installed with
    the calibrator); ``$ERASE_DEMO_MODEL`` overrides it."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path(str(resources.files("erase_calibrate.data_samples").joinpath("demo-model")))


def load_demo(
    path: str | os.PathLike[str] | None = None, *, dtype: torch.dtype = torch.float32, attn_implementation: str = "sdpa"
) -> tuple[Qwen2_5_VLForConditionalGeneration, ImageTextProcessor]:
    """(model in eval mode, processor) of the demo checkpoint (or of PATH, a demo-shaped one), through the registry."""
    from .registry import load

    dtypes = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
    loaded = load(NAME if path is None else str(path), dtype=dtypes[dtype], attn_implementation=attn_implementation)
    return loaded.model, loaded.processor


def _locate(spec: str, revision: str | None) -> Located:
    path = demo_model_path()
    if not path.is_dir():
        raise EraseError(f"the demo model is missing at {path}; reinstall the project from its checkout")
    check_revision_option(spec, str(path), revision)
    return Located(str(path), load_config(spec, str(path)), model_revision(str(path)))


SOURCE = register(
    ModelSource(NAME, lambda spec: spec == NAME, _locate, open_pretrained, default_tasks=(NAME,), shipped_profile=lambda spec, fp: NAME)
)


def spec_dict(spec: DemoSpec = DEMO_SPEC) -> dict[str, Any]:
    return asdict(spec)
