"""Checkpoints that load the way real ones load, `from_pretrained`: a local folder or a hub id.

Two registrations: a folder (an existing path, or one written like a path) and a hub id (the
fallback: anything no other source claims). Without torchvision, `AutoProcessor` cannot build
the Qwen processors (their video processor needs it), so the processor falls back to an
image-only one built from the checkpoint's own image processor, tokenizer and chat template.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from erase import EraseError, Fingerprint

from .identity import load_config, model_revision
from .processor import ImageTextProcessor
from .registry import DTYPES, Located, LoadOptions, ModelSource, first_line, register

# The shipped profiles by architecture: Qwen2.5-VL-7B has 28 decoder layers, the 3B 36.
SHIPPED_BY_DEPTH = {("qwen2_5_vl", 28): "qwen2.5-vl-7b", ("qwen2_5_vl", 36): "qwen2.5-vl-3b"}


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


def open_pretrained(spec: str, located: Located, options: LoadOptions) -> tuple[Any, Any]:
    """Model (eval mode, on the device) and processor of a located checkpoint."""
    cls = _model_class(located.config.model_type)
    path, revision = located.path, _asked_revision(located)
    # the processor first: a bad pixel range is refused before the weights load
    processor = load_processor(path, min_pixels=options.min_pixels, max_pixels=options.max_pixels, revision=revision)
    try:
        net = cls.from_pretrained(
            path, dtype=DTYPES[options.dtype], attn_implementation=options.attn_implementation, revision=revision
        )
    except Exception as exc:  # noqa: BLE001 - missing or corrupt weights fail in many ways; one line for the user
        raise EraseError(f"cannot load the weights of model {spec!r}: {first_line(exc)}") from None
    return net.to(options.device).eval(), processor


def _asked_revision(located: Located) -> str | None:
    return located.extra  # what --revision asked for (hub ids); located.revision is what it resolved to


def locate_hub(spec: str, revision: str | None) -> Located:
    config = load_config(spec, spec, revision)
    return Located(spec, config, model_revision(spec, revision), extra=revision)


def looks_like_folder(spec: str) -> bool:
    """An existing path, or one written as a path: a hub id is `org/name`, one slash, no leading dot."""
    return os.path.exists(spec) or spec.startswith((".", "/", "~")) or spec.count("/") > 1 or os.sep != "/" and os.sep in spec


def locate_folder(spec: str, revision: str | None) -> Located:
    path = Path(spec).expanduser()
    if not path.is_dir():
        what = "not a directory" if path.exists() else "no such checkpoint directory"
        raise EraseError(f"cannot load model {spec!r}: {what}")
    if not (path / "config.json").is_file():
        raise EraseError(f"cannot load model {spec!r}: not a checkpoint directory (no config.json)")
    config = load_config(spec, str(path), revision)
    return Located(str(path), config, model_revision(str(path)))


def shipped_by_depth(spec: str, fingerprint: Fingerprint) -> str | None:
    return SHIPPED_BY_DEPTH.get((fingerprint.family, fingerprint.num_layers))


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
        raise EraseError(f"cannot load the processor of {path}: {first_line(exc)}") from None
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


FOLDER = register(
    ModelSource("folder", looks_like_folder, locate_folder, open_pretrained, shipped_profile=shipped_by_depth, order=1)
)
HUB = register(
    ModelSource("hub", lambda spec: True, locate_hub, open_pretrained, local=False, shipped_profile=shipped_by_depth, order=2)
)
