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


def check_device(text: str, option: str = "--device") -> str:
    """A torch device string this machine can use (cpu, cuda, cuda:N, mps), or a one-line EraseError."""
    if not isinstance(text, str) or not text.strip():
        raise EraseError(f"{option} {text!r}: expected a device such as cpu, cuda or cuda:1")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise EraseError(f"{option} {text!r}: not a torch device (expected e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "cpu":
        return text
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise EraseError(f"{option} {text!r}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise EraseError(f"{option} {text!r}: this machine has {count} CUDA device(s), numbered 0..{count - 1}")
        return text
    if dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise EraseError(f"{option} {text!r}: MPS is not available on this machine")
        return text
    raise EraseError(f"{option} {text!r}: device type {dev.type!r} is not supported here (use cpu or cuda)")


def check_dtype(text: str, option: str = "--dtype") -> str:
    if text not in DTYPES:
        raise EraseError(f"{option} {text!r}: expected one of {', '.join(DTYPES)}")
    return text


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
    check_dtype(dtype)
    check_device(device)
    path, config = load_config(model, revision)
    cls = _model_class(config.model_type)
    # the processor first: a bad pixel range is refused before the weights load
    processor = load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels, revision=revision)
    ip = processor.image_processor
    size = getattr(ip, "size", None) or {}
    try:
        net = cls.from_pretrained(path, dtype=DTYPES[dtype], attn_implementation=attn_implementation, revision=revision)
    except Exception as exc:  # noqa: BLE001 - missing or corrupt weights fail in many ways; one line for the user
        raise EraseError(f"cannot load the weights of model {model!r}: {_first_line(exc)}") from None
    net = net.to(device).eval()
    return LoadedModel(
        model=net,
        processor=processor,
        model_id=model,
        revision=model_revision(path, revision),
        min_pixels=size.get("shortest_edge", min_pixels),
        max_pixels=size.get("longest_edge", max_pixels),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_processor(
    path: str, *, min_pixels: int | None = None, max_pixels: int | None = None, revision: str | None = None
) -> Any:
    """MODEL's processor; `min_pixels` / `max_pixels` replace the checkpoint's bounds (one, or both)."""
    from transformers import AutoImageProcessor, AutoTokenizer

    kwargs: dict[str, Any] = {} if revision is None else {"revision": revision}
    try:
        if min_pixels is not None or max_pixels is not None:
            kwargs["size"] = _pixel_size(AutoImageProcessor.from_pretrained(path, **kwargs), min_pixels, max_pixels)
        try:
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(path, **kwargs)
            if hasattr(processor, "image_processor"):  # it silently returns a tokenizer when it cannot do better
                return processor
        except Exception:  # noqa: BLE001 - no torchvision: the video processor cannot be built
            pass
        image_processor = AutoImageProcessor.from_pretrained(path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left", **({} if revision is None else {"revision": revision}))
    except EraseError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken processor or tokenizer config: one line for the user
        raise EraseError(f"cannot load the processor of {path}: {_first_line(exc)}") from None
    template = getattr(tokenizer, "chat_template", None)
    if template is None and os.path.exists(os.path.join(path, "chat_template.jinja")):
        template = Path(path, "chat_template.jinja").read_text()
    return ImageTextProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)


def _pixel_size(image_processor: Any, min_pixels: int | None, max_pixels: int | None) -> dict[str, int]:
    """The checkpoint's pixel bounds with the given ones replaced (passing half a `size` would drop the other)."""
    current = {k: v for k, v in dict(getattr(image_processor, "size", None) or {}).items() if v is not None}
    if "shortest_edge" not in current and "longest_edge" not in current:
        raise EraseError(
            f"--min-pixels / --max-pixels apply to processors with a pixel range (Qwen2.5-VL, Qwen3-VL); "
            f"{type(image_processor).__name__} resizes to a fixed size {current}"
        )
    size = dict(current)
    if min_pixels is not None:
        size["shortest_edge"] = min_pixels
    if max_pixels is not None:
        size["longest_edge"] = max_pixels
    lo, hi = size.get("shortest_edge"), size.get("longest_edge")
    if lo is not None and hi is not None and lo > hi:
        which = "--min-pixels" if min_pixels is not None else "the checkpoint's min_pixels"
        other = "--max-pixels" if max_pixels is not None else "the checkpoint's max_pixels"
        raise EraseError(f"{which} ({lo}) exceeds {other} ({hi})")
    return size
