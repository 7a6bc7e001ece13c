"""erase-eval's options checked and turned into an `EvalConfig`, before any model loads.

Every user mistake here is a one-line `EraseError` (exit 2) and nothing is written.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import erase
from erase import EraseError
from erase.fileio import check_writable
from erase.matching import mismatches

from . import sources
from .run import EvalConfig, ItemSet, parse_methods, parse_pruning

PNG_SUFFIX = ".png"


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "erase" / "eval"


def check_outputs(outputs: Sequence[tuple[str, Path | None]]) -> None:
    given = [(o, p) for o, p in outputs if p is not None]
    resolved = [p.resolve() for _, p in given]
    if len(set(resolved)) != len(resolved):
        raise EraseError("--json, --markdown and --plot must be different files")
    for option, path in given:
        check_writable(path, option)
        if option == "--plot" and path.suffix.lower() != PNG_SUFFIX:
            raise EraseError(f"--plot {path}: the plot is a PNG; name it *.png")


def whole(option: str, value: int | None, minimum: int) -> int | None:
    if value is not None and value < minimum:
        raise EraseError(f"{option} {value}: expected a whole number >= {minimum}")
    return value


def resolve_profile(spec: str, identity: sources.Identity, allow_transfer: bool) -> tuple[erase.Profile, list[str]]:
    """The profile by name, path or 'auto' (matched to the model's config), checked against the model."""
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        profile = erase.resolve_profile(spec, identity.config)
    notes += [str(w.message) for w in caught]
    wrong = mismatches(profile.model.fingerprint, identity.fingerprint)
    if wrong and spec != "auto":
        msg = f"profile {profile.name!r} was calibrated for {profile.model.id} ({'; '.join(wrong)})"
        if not allow_transfer:
            raise EraseError(msg + "; pass --allow-transfer to use it anyway")
        notes.append(msg + "; used zero-shot (--allow-transfer)")
    profile.check_depth(identity.fingerprint.num_layers)
    return profile, notes


def pixel_range(profile: erase.Profile, identity: sources.Identity, lo: int | None, hi: int | None) -> tuple[int | None, int | None]:
    """--min/--max-pixels, else the range the profile was calibrated at (Qwen processors have one)."""
    if lo is not None or hi is not None or not identity.fingerprint.family.startswith("qwen"):
        return lo, hi
    ip = profile.image_processing
    return getattr(ip, "min_pixels", None), getattr(ip, "max_pixels", None)


def build(
    *,
    model: str,
    profile: str | None,
    methods: str,
    pruning: str,
    benchmarks: str | None,
    datasets: Sequence[str],
    scorer: str,
    prompt_template: str | None,
    data_dir: str | None,
    limit: int | None,
    seed: int,
    device: str,
    dtype: str,
    attn: str,
    min_pixels: int | None,
    max_pixels: int | None,
    revision: str | None,
    max_new_tokens: int,
    batch: int | None,
    cache_dir: Path | None,
    allow_transfer: bool,
    outputs: Sequence[tuple[str, Path | None]],
) -> EvalConfig:
    method_list = parse_methods(methods)
    levels = parse_pruning(pruning)
    whole("--limit", limit, 1)
    whole("--max-new-tokens", max_new_tokens, 1)
    whole("--batch", batch, 1)
    whole("--seed", seed, 0)
    if attn not in ("sdpa", "eager"):
        raise EraseError(f"--attn {attn!r}: expected sdpa or eager")
    sources.check_dtype(dtype)
    sources.check_device(device)
    check_outputs(outputs)
    if benchmarks is not None and datasets:
        raise EraseError("--benchmarks and --dataset exclude each other; evaluate one kind per run")
    names = sources.check_benchmarks([b.strip() for b in benchmarks.split(",") if b.strip()]) if benchmarks else []
    if benchmarks is not None and not names:
        raise EraseError("--benchmarks: no benchmark given")
    own = sources.describe_datasets(datasets, scorer, prompt_template, set(names)) if datasets else []
    if profile is not None and profile != "auto":
        erase.load_profile(profile)  # a missing or broken profile: refused before the model is read
    identity = sources.identify(model, revision)
    shipped = sources.default_profile(model, identity) if profile is None else None
    prof, notes = resolve_profile(profile or shipped, identity, allow_transfer)
    if not names and not own:
        names = sources.default_benchmarks(model)
    item_sets = [
        ItemSet(n, f"benchmark:{n}:{data_dir or 'hub'}:seed{seed}", sources.benchmark_items(n, limit=limit, seed=seed, data_dir=data_dir), n)
        for n in names
    ]
    item_sets += [ItemSet(ds.name, sources.dataset_spec(ds), sources.dataset_items(ds, limit=limit, seed=seed)) for ds in own]
    for s in item_sets:
        ids = [it.id for it in s.items]
        if not ids:
            raise EraseError(f"{s.name}: no items to evaluate")
        if len(set(ids)) != len(ids):
            raise EraseError(f"{s.name}: item ids are not unique; answers cannot be cached per item")
    lo, hi = pixel_range(prof, identity, min_pixels, max_pixels)
    return EvalConfig(
        model=model,
        methods=method_list,
        pruning=levels,
        item_sets=item_sets,
        data_dir=data_dir,
        profile=prof,
        profile_source=profile or (shipped if shipped == "auto" else f"{shipped} (shipped)"),
        cache_dir=cache_dir or default_cache_dir(),
        device=device,
        dtype=dtype,
        attn=attn,
        min_pixels=lo,
        max_pixels=hi,
        revision=revision,
        max_new_tokens=max_new_tokens,
        batch=batch or sources.default_batch(device),
        seed=seed,
        allow_transfer=allow_transfer,
        identity=identity,
        notes=notes,
    )


def describe_model(config: EvalConfig) -> dict[str, Any]:
    ident = config.identity
    return {
        "name": config.model,
        "revision": ident.revision if ident else None,
        "fingerprint": dataclasses.asdict(ident.fingerprint) if ident else None,
        "dtype": config.dtype,
        "attn": config.attn,
        "min_pixels": config.min_pixels,
        "max_pixels": config.max_pixels,
    }


def describe_settings(config: EvalConfig) -> dict[str, Any]:
    from .run import keep_ratio

    return {
        "methods": config.methods,
        "pruning": config.pruning,
        "final_keep_ratios": [keep_ratio(p) for p in config.pruning],
        "benchmarks": [{"name": s.name, "items": len(s.items), "source": s.key} for s in config.item_sets],
        "max_new_tokens": config.max_new_tokens,
        "batch": config.batch,
        "seed": config.seed,
        "decoding": "greedy",
    }


def machine(device: str) -> dict[str, Any]:
    import platform

    import torch
    import transformers

    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "erase": erase.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    try:
        with open("/proc/cpuinfo") as fh:
            facts["cpu"] = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        facts["cpu"] = platform.processor() or None
    if device.startswith("cuda"):
        facts["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return facts
