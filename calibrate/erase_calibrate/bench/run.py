"""One erase-bench run: the model from the registry, one input per token count, every method timed.

`BenchConfig.parse` checks every option before any heavy work; `run` returns the report that
`report` renders as JSON, markdown and PNG.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from erase import EraseError
from erase.fileio import check_writable

from .. import models
from ..models.presets import PRESETS, TOKEN_PX
from . import inputs as binputs
from . import measure

DTYPES = ("float32", "bfloat16", "float16")
ATTNS = ("sdpa", "eager")
DEVICES = ("cpu", "cuda")
FAMILY = "qwen2_5_vl"  # the FLOP model and the synthetic inputs are Qwen2.5-VL's


def _int(name: str, text: str, minimum: int, maximum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if not minimum <= value <= maximum:
        raise EraseError(f"{name} {text!r}: expected a whole number in {minimum}..{maximum:,}")
    return value


def _choice(name: str, text: str, choices: tuple[str, ...]) -> str:
    if text not in choices:
        raise EraseError(f"{name} {text!r}: expected one of {', '.join(choices)}")
    return text


def _ratio(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        ratio = float(text)
    except ValueError:
        ratio = -1.0
    if not 0.0 < ratio <= 1.0:
        raise EraseError(f"--final-keep-ratio {text!r}: expected a number in (0, 1]")
    return ratio


@dataclass
class BenchConfig:
    model: str
    tokens: list[int]
    methods: list[str]
    final_keep_ratio: float | None
    new_tokens: int
    repeats: int
    warmup: int
    seed: int
    device: str
    dtype: str
    attn: str
    image_kind: str
    profile: str | None
    image: Path | None
    outputs: dict[str, Path]  # --json / --markdown / --plot -> file

    @classmethod
    def parse(cls, model: str, *, tokens: str, methods: str, final_keep_ratio: str | None, new_tokens: str, repeats: str,
              warmup: str, seed: str, device: str, dtype: str, attn: str, image_kind: str, profile: str | None,
              image: Path | None, outputs: dict[str, Path | None]) -> "BenchConfig":
        """Every option checked, the output files writable; one-line errors."""
        config = cls(
            model, binputs.parse_tokens(tokens), measure.parse_methods(methods), _ratio(final_keep_ratio),
            _int("--new-tokens", new_tokens, 1, 4096), _int("--repeats", repeats, 1, 10_000),
            _int("--warmup", warmup, 0, 10_000), _int("--seed", seed, 0, 2**32 - 1), _choice("--device", device, DEVICES),
            _choice("--dtype", dtype, DTYPES), _choice("--attn", attn, ATTNS),
            _choice("--image-kind", image_kind, binputs.IMAGE_KINDS), profile, image,
            {k: v for k, v in outputs.items() if v is not None},
        )
        resolved = [p.resolve() for p in config.outputs.values()]
        if len(set(resolved)) != len(resolved):
            raise EraseError("--json, --markdown and --plot must be different files")
        for option, path in config.outputs.items():
            check_writable(path, option)
        return config


def locate(spec: str, profile: str | None) -> tuple[Any, Any]:
    """(registry source, profile) for SPEC, from its config alone: the refusals come before any weights."""
    import erase

    source = models.find(spec)
    if not source.local:
        raise EraseError(f"unknown model {spec!r}: not a preset ({', '.join(PRESETS)}), 'demo' or a checkpoint directory")
    fp = models.identify(spec).fingerprint
    if fp.family != FAMILY:
        raise EraseError(f"--model {spec}: model family {fp.family!r} is not supported ({FAMILY})")
    name = profile or models.shipped_profile(spec, fp)
    if name is None:
        raise EraseError(f"--model {spec}: no shipped profile fits {fp.num_layers} decoder layers; pass --profile")
    prof = erase.load_profile(name)
    prof.check_depth(fp.num_layers)
    return source, prof


def model_info(loaded: Any) -> dict[str, Any]:
    if loaded.source == "preset":
        preset = PRESETS[loaded.model_id]
        return {"name": preset.name, "source": "preset (random weights)", "description": preset.description}
    return {"name": loaded.model_id, "source": "checkpoint", "description": f"checkpoint {loaded.identity.path}"}


def build_cases(
    config: BenchConfig, loaded: Any, prof: Any, keep: float, user_image: Any, log: Callable[[str], None]
) -> list[measure.Case]:
    """One input per token count: the synthetic image (or --image) at exactly that many vision tokens."""
    import torch

    from ..models.processor import build_processor

    images = {
        t: binputs.fit_image(user_image, t) if user_image is not None else binputs.synthetic_image(t, config.image_kind, config.seed)
        for t in config.tokens
    }
    smallest = 4 * TOKEN_PX * TOKEN_PX
    max_pixels = max(im.width * im.height for im in images.values())
    # a pixel range that keeps each image at exactly its token count (every Qwen2.5-VL processor
    # normalises with the same CLIP statistics, so the checkpoint's own image processor is not needed)
    processor = build_processor(loaded.processor.tokenizer, min_pixels=smallest, max_pixels=max(max_pixels, smallest))
    image_token_id = loaded.model.config.image_token_id
    dev = torch.device(config.device)
    cases = []
    for t in config.tokens:
        im = images[t]
        t1 = time.perf_counter()
        inputs = binputs.build_inputs(processor, im)
        pre_ms = 1e3 * (time.perf_counter() - t1)
        ids = inputs["input_ids"][0]
        is_image = ids == image_token_id
        vision = int(is_image.sum())
        first = int(is_image.nonzero()[0])
        query = int((~is_image[first:]).sum())
        grid = tuple(int(v) for v in inputs["image_grid_thw"][0].tolist())
        level, entropy = measure.numpy_level(im, prof, keep, TOKEN_PX)
        inputs = {k: (v.to(dev) if hasattr(v, "to") else v) for k, v in inputs.items()}
        text = int(ids.numel()) - vision
        cases.append(measure.Case(t, inputs, (im.width, im.height), round(pre_ms, 3), vision, text, query, grid, level, entropy))
        log(f"  {t} tokens: image {im.width}x{im.height}, {vision} vision + {text} text tokens, level {level} (H = {entropy:.3f})")
    return cases


def adavtp_reference(prof: Any, loaded: Any, cases: list[measure.Case], methods: list[str]) -> tuple[Any, str | None]:
    """AdaVTP reads reference statistics from the profile; the shipped profiles have none (they need
    the real model), so they come from the benchmark's own images: right for timing, not for accuracy."""
    from erase.references import with_adavtp_reference

    if "adavtp" not in methods or prof.methods.adavtp is not None:
        return prof, None
    prof = with_adavtp_reference(prof, loaded.model, [c.inputs for c in cases])
    ref = prof.methods.adavtp
    note = (
        f"AdaVTP reference statistics computed on the benchmark's own {ref.images} image(s) "
        f"(erank_avg {ref.erank_avg:.3f}, tau_max {ref.tau_max:.4f}): for timing only"
    )
    return prof, note


def run(config: BenchConfig, command: str, log: Callable[[str], None]) -> dict[str, Any]:
    """Load, build the inputs, time every method; the report (see `report`)."""
    import erase
    import torch

    models.check_device(config.device)
    t0 = time.perf_counter()
    _, prof = locate(config.model, config.profile)
    user_image = None
    if config.image is not None:
        from erase.imaging import open_image

        user_image = open_image(config.image)
    loaded = models.load(config.model, device=config.device, dtype=config.dtype, attn_implementation=config.attn, seed=config.seed)
    keep = config.final_keep_ratio if config.final_keep_ratio is not None else prof.stage2.final_keep_ratio
    info = model_info(loaded)
    info.update(parameters=sum(p.numel() for p in loaded.model.parameters()), dtype=config.dtype, attn=config.attn,
                profile=prof.name, profile_model=prof.model.id)
    log(f"erase-bench: {info['name']} ready in {time.perf_counter() - t0:.1f} s ({info['parameters'] / 1e6:.1f} M parameters)")
    cases = build_cases(config, loaded, prof, keep, user_image, log)
    prof, reference_note = adavtp_reference(prof, loaded, cases, config.methods)
    if reference_note:
        log(f"  {reference_note}")
    dev = torch.device(config.device)
    machine = measure.machine_facts(dev)
    started = _dt.datetime.now().astimezone()
    records, facts = measure.run_benchmark(
        loaded.model, cases, config.methods, prof, keep, new_tokens=config.new_tokens, repeats=config.repeats,
        warmup=config.warmup, device=dev, log=log,
    )
    try:
        machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    machine["wall_s"] = round(time.perf_counter() - t0, 1)
    return {
        "command": command,
        "tool": "erase-bench",
        "version": erase.__version__,
        "date": started.isoformat(timespec="seconds"),
        "machine": machine,
        "model": info,
        "settings": {
            "tokens": config.tokens,
            "methods": config.methods,
            "final_keep_ratio": keep,
            "new_tokens": config.new_tokens,
            "repeats": config.repeats,
            "warmup": config.warmup,
            "image": str(config.image) if config.image is not None else f"synthetic {config.image_kind} (seed {config.seed})",
            "prompt": binputs.PROMPT,
            "seed": config.seed,
        },
        "facts": {**facts, **({"adavtp_reference": reference_note} if reference_note else {})},
        "definitions": {
            "predicted_speedup": "LLM prefill FLOPs of base / method, from the schedule applied (ViT excluded)",
            "measured_speedup": "LLM prefill time (first forward of generate) of base / method",
            "prefill_ms": "first forward of generate(): LLM prefill incl. ERASE Stage 1/2 work, without the ViT",
            "e2e_ms": "wall time of generate() (ViT + prefill + decode), processor excluded",
            "kv_bytes": "keys + values of all layers after prefill",
        },
        "records": records,
    }
