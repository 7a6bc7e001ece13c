"""Loading a VLM and its processor the way real checkpoints load: `from_pretrained`.

MODEL is a hub id, a local folder, or `demo` (the trained demo model shipped in
data_samples/). Without torchvision, `AutoProcessor` cannot build the Qwen
processors (their video processor needs it), so the processor falls back to an
image-only one built from the checkpoint's own image processor, tokenizer and
chat template.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from erase import EraseError

from .model_identity import load_config, model_revision, resolve_model_path  # noqa: F401 (resolve_model_path re-exported)
from .offline_processor import ImageTextProcessor

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    model: Any
    processor: Any
    model_id: str
    revision: str | None
    min_pixels: int | None
    max_pixels: int | None

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer


def _model_class(model_type: str) -> Any:
    import transformers

    classes = {
        "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
        "qwen3_vl": "Qwen3VLForConditionalGeneration",
        "internvl": "InternVLForConditionalGeneration",
    }
    if model_type not in classes:
        raise EraseError(f"model type {model_type!r} is not supported yet (supported: {', '.join(classes)})")
    return getattr(transformers, classes[model_type])


def load_model(
    model: str,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    attn_implementation: str = "sdpa",
    revision: str | None = None,
) -> LoadedModel:
    """Load MODEL (hub id, folder or `demo`) with its processor; one-line errors for user faults.

    `revision` (hub ids only) pins a branch, tag or commit; `LoadedModel.revision` is what
    `model_identity.model_revision` records for it.
    """
    if dtype not in DTYPES:
        raise EraseError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EraseError(f"device {device!r} requested but CUDA is not available")
    path, config = load_config(model, revision)
    cls = _model_class(config.model_type)
    net = cls.from_pretrained(path, dtype=DTYPES[dtype], attn_implementation=attn_implementation, revision=revision)
    net = net.to(device).eval()
    processor = load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels, revision=revision)
    ip = processor.image_processor
    size = getattr(ip, "size", None) or {}
    return LoadedModel(
        model=net,
        processor=processor,
        model_id=model,
        revision=model_revision(path, revision),
        min_pixels=size.get("shortest_edge", min_pixels),
        max_pixels=size.get("longest_edge", max_pixels),
    )


def load_processor(
    path: str, *, min_pixels: int | None = None, max_pixels: int | None = None, revision: str | None = None
) -> Any:
    from transformers import AutoImageProcessor, AutoTokenizer

    kwargs: dict[str, Any] = {} if revision is None else {"revision": revision}
    if min_pixels is not None or max_pixels is not None:
        size = {}
        if min_pixels is not None:
            size["shortest_edge"] = min_pixels
        if max_pixels is not None:
            size["longest_edge"] = max_pixels
        kwargs["size"] = size
    try:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(path, **kwargs)
        if hasattr(processor, "image_processor"):  # it silently returns a tokenizer when it cannot do better
            return processor
    except Exception:  # noqa: BLE001 - no torchvision: the video processor cannot be built
        pass
    image_processor = AutoImageProcessor.from_pretrained(path, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left", **({} if revision is None else {"revision": revision}))
    template = getattr(tokenizer, "chat_template", None)
    if template is None and os.path.exists(os.path.join(path, "chat_template.jinja")):
        template = Path(path, "chat_template.jinja").read_text()
    return ImageTextProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
