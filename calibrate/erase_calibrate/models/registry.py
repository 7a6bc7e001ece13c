"""The one registry of model sources: every command turns `--model SPEC` into a model here.

A source is a registration: whether it claims a spec, how to find the spec's config without
weights (`locate`), and how to open the model and its processor (`open`). `load` and
`identify` are the same for every source, so a profile records one kind of identity whatever
the model came from. Named sources (the demo, the presets) are tried first, then folders; the
hub source, which claims anything, is last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from erase import EraseError, Fingerprint, fingerprint_of

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ModelIdentity:
    model: str  # as the user named it
    path: str  # what from_pretrained loads (a hub id or a folder; a preset's name)
    revision: str | None
    fingerprint: Fingerprint
    # the transformers config (what "auto" profiles are matched against); not part of the identity
    config: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Located:
    """A spec's config, found without reading weights."""

    path: str
    config: Any
    revision: str | None
    extra: Any = None  # whatever `open` needs again (a preset's tokenizer)


@dataclass(frozen=True)
class LoadOptions:
    device: str = "cpu"
    dtype: str = "float32"
    min_pixels: int | None = None
    max_pixels: int | None = None
    attn_implementation: str = "sdpa"
    seed: int = 0  # random-weight sources only


@dataclass
class LoadedModel:
    model: Any
    processor: Any
    model_id: str
    revision: str | None
    min_pixels: int | None
    max_pixels: int | None
    identity: ModelIdentity | None = None
    source: str = ""

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer


@dataclass(frozen=True)
class ModelSource:
    name: str
    claims: Callable[[str], bool]
    locate: Callable[[str, str | None], Located]
    open: Callable[[str, Located, LoadOptions], tuple[Any, Any]]  # (model in eval mode, processor)
    local: bool = True  # needs no hub
    default_tasks: tuple[str, ...] | None = None  # item sources it calibrates on; None: the paper's benchmarks
    shipped_profile: Callable[[str, Fingerprint], str | None] = lambda spec, fp: None
    order: int = 0  # sources are tried by order, then registration: names first, folders, hub ids last


_SOURCES: list[ModelSource] = []


def register(source: ModelSource) -> ModelSource:
    if any(s.name == source.name for s in _SOURCES):
        raise ValueError(f"model source {source.name!r} is registered twice")
    _SOURCES.append(source)
    _SOURCES.sort(key=lambda s: s.order)  # stable: registration order within one order
    return source


def sources() -> list[ModelSource]:
    return list(_SOURCES)


def find(spec: str) -> ModelSource:
    if not isinstance(spec, str) or not spec.strip():
        raise EraseError("--model is empty: give a hub id, a local checkpoint folder or 'demo'")
    for source in _SOURCES:
        if source.claims(spec):
            return source
    raise EraseError(f"unknown model {spec!r}")  # unreachable while the hub fallback is registered


def identify(spec: str, revision: str | None = None) -> ModelIdentity:
    """Revision and fingerprint of SPEC from its config; no weights are read."""
    located = find(spec).locate(spec, revision)
    return ModelIdentity(spec, located.path, located.revision, fingerprint_of(located.config), located.config)


def load(
    spec: str,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    revision: str | None = None,
    attn_implementation: str = "sdpa",
    seed: int = 0,
) -> LoadedModel:
    """SPEC's model (eval mode, on `device`), its processor and identity; one-line errors for user faults."""
    check_dtype(dtype)
    check_device(device)
    source = find(spec)
    located = source.locate(spec, revision)
    options = LoadOptions(device, dtype, min_pixels, max_pixels, attn_implementation, seed)
    model, processor = source.open(spec, located, options)
    size = getattr(processor.image_processor, "size", None) or {}
    return LoadedModel(
        model=model,
        processor=processor,
        model_id=spec,
        revision=located.revision,
        min_pixels=size.get("shortest_edge", min_pixels),
        max_pixels=size.get("longest_edge", max_pixels),
        identity=ModelIdentity(spec, located.path, located.revision, fingerprint_of(located.config), located.config),
        source=source.name,
    )


def default_tasks(spec: str) -> tuple[str, ...] | None:
    return find(spec).default_tasks


def shipped_profile(spec: str, fingerprint: Fingerprint) -> str | None:
    """The shipped profile whose layers and thresholds apply to SPEC, if one does."""
    return find(spec).shipped_profile(spec, fingerprint)


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


def default_batch(device: str) -> int:
    """Items per left-padded batch when none is given: what fits comfortably on each kind of device."""
    return 16 if str(device).startswith("cuda") else 8


def check_dtype(text: str, option: str = "--dtype") -> str:
    if text not in DTYPES:
        raise EraseError(f"{option} {text!r}: expected one of {', '.join(DTYPES)}")
    return text


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
