"""Timing, memory and KV-cache measurement of one `generate()` per method.

One `model.generate(max_new_tokens=N)` gives every number, through hooks:

- ViT: forward pre/post hooks on the vision tower (`generate` encodes the
  images before the first forward of the model);
- prefill: the model's first forward (ERASE's Stage 1 scoring, repacking,
  Stage 2 scoring and KV eviction all run inside it and are counted);
- decode: the model's later forwards, one per generated token after the first;
- e2e: the wall time of `generate` (ViT + prefill + decode + sampling glue),
  without the processor (the same for every method, reported once per size);
- KV bytes: keys + values of every layer of the cache right after prefill;
- peak memory: `torch.cuda.max_memory_allocated` on CUDA (reset per run). On
  CPU, the process's peak resident set (VmHWM), reset per run by writing 5 to
  /proc/self/clear_refs (Linux >= 4.0); it includes the weights. Where that reset
  is refused, `ru_maxrss` (peak since the process started) is reported and
  marked so: it cannot be reset and only ever grows.

On CUDA every hook synchronises first, so times are the device's.
Methods are interleaved (A B C A B C ...) within each token count after one
warm-up round, and each number is the median over the repeats.
"""

from __future__ import annotations

import gc
import os
import re
import resource
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

import erase
from erase import EraseError, Strategy, named_strategy
from erase.strategy import NAMED

from .flops import Schedule, TextShape, VisionShape, llm_prefill_flops, vit_flops

METHODS = ("base", *NAMED)  # base: the unpatched model


def strategy_for(method: str, final_keep_ratio: float) -> Strategy | None:
    """The runtime schedule of a benchmark method; None for the unpruned base."""
    if method == "base":
        return None
    if method not in NAMED:
        raise EraseError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    return named_strategy(method, final_keep_ratio)


def parse_methods(text: str) -> list[str]:
    out = [m.strip() for m in str(text).split(",") if m.strip()]
    if not out:
        raise EraseError("--methods: give at least one method, e.g. base,erase")
    for m in out:
        if m not in METHODS:
            raise EraseError(f"--methods: unknown method {m!r} (known: {', '.join(METHODS)})")
    if len(set(out)) != len(out):
        raise EraseError(f"--methods {text!r}: a method appears twice")
    return out


# ---------------------------------------------------------------------------- memory


class PeakMemory:
    """Per-run peak memory of the device, or of the process on CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.source = "cuda.max_memory_allocated" if device.type == "cuda" else self._cpu_source()
        self.start = 0

    @staticmethod
    def _cpu_source() -> str:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            if _vm_hwm() is not None:
                return "VmHWM (reset per run)"
        except OSError:
            pass
        return "ru_maxrss (process lifetime, not reset)"

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            return
        if self.source.startswith("VmHWM"):
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        self.start = _rss()

    def peak(self) -> tuple[int, int]:
        """(peak bytes, peak minus what was resident at reset)."""
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.source.startswith("VmHWM"):
            peak = _vm_hwm() or 0
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return int(peak), int(max(0, peak - self.start))


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            m = re.search(rf"^{key}:\s+(\d+) kB", fh.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) * 1024 if m else None


def _vm_hwm() -> int | None:
    return _status_kb("VmHWM")


def _rss() -> int:
    return _status_kb("VmRSS") or 0


# ---------------------------------------------------------------------------- one run


def output_cache(output: Any) -> Any:
    """A model output's cache: field `cache` from transformers 5.24, `past_key_values` before.

    Read as a mapping key, not the attribute: 5.24's `past_key_values` property warns on every
    first use (a deprecation line in the user's output)."""
    for name in ("cache", "past_key_values"):
        if isinstance(output, dict) and output.get(name) is not None:
            return output[name]
    return None


def kv_bytes(cache: Any) -> int:
    """Keys + values of every layer of a transformers cache."""
    if cache is None:
        return 0
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


class Probe:
    """Hooks that time the vision tower and every forward of the model in one generate()."""

    def __init__(self, model: torch.nn.Module, sync: Callable[[], None]):
        self.sync = sync
        self.vit_ms = 0.0
        self.forward_ms: list[float] = []
        self.prefill_cpu_ms = 0.0
        self.kv_after_prefill = 0
        self._t_vit = self._t_fwd = self._c_fwd = 0.0
        visual = model.model.visual
        self._hooks = [
            visual.register_forward_pre_hook(self._vit_pre),
            visual.register_forward_hook(self._vit_post),
            model.register_forward_pre_hook(self._fwd_pre),
            model.register_forward_hook(self._fwd_post),
        ]

    def _vit_pre(self, module, args):
        self.sync()
        self._t_vit = time.perf_counter()

    def _vit_post(self, module, args, output):
        self.sync()
        self.vit_ms += 1e3 * (time.perf_counter() - self._t_vit)

    def _fwd_pre(self, module, args):
        self.sync()
        self._t_fwd = time.perf_counter()
        self._c_fwd = time.process_time()

    def _fwd_post(self, module, args, output):
        self.sync()
        self.forward_ms.append(1e3 * (time.perf_counter() - self._t_fwd))
        if len(self.forward_ms) == 1:
            self.prefill_cpu_ms = 1e3 * (time.process_time() - self._c_fwd)
            self.kv_after_prefill = kv_bytes(output_cache(output))

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()


@dataclass
class RunResult:
    vit_ms: float
    prefill_ms: float
    prefill_cpu_ms: float | None  # CPU time of the process (all threads) during prefill; None on CUDA
    decode_ms_per_token: float | None
    decode_steps: int
    e2e_ms: float
    kv_bytes: int
    peak_mem_bytes: int
    peak_mem_delta_bytes: int
    stats: list[erase.ImageStats] = field(default_factory=list)
    transfer_note: str | None = None


def run_once(
    model: torch.nn.Module,
    inputs: dict[str, Any],
    method: str,
    profile: erase.Profile,
    final_keep_ratio: float,
    new_tokens: int,
    memory: PeakMemory,
) -> RunResult:
    """One generate() of `new_tokens` tokens under `method`, measured."""
    device = memory.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    strategy = strategy_for(method, final_keep_ratio)
    handle = None
    note = None
    if strategy is not None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # A preset is not the checkpoint the profile was calibrated on (other
            # hidden size): speed does not care, so apply it zero-shot, quietly.
            handle = erase.apply(model, profile, final_keep_ratio=final_keep_ratio, allow_transfer=True, strategy=strategy)
        note = next((str(w.message) for w in caught if "zero-shot" in str(w.message)), None)
    probe = Probe(model, sync)
    gc.collect()
    try:
        memory.reset()
        sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        sync()
        e2e = 1e3 * (time.perf_counter() - t0)
        peak, delta = memory.peak()
        stats = [st for sample in handle.stats for st in sample] if handle is not None else []
    finally:
        probe.remove()
        if handle is not None:
            handle.remove()
    if not probe.forward_ms:
        raise EraseError("generate() ran no forward pass")
    decode = probe.forward_ms[1:]
    return RunResult(
        vit_ms=probe.vit_ms,
        prefill_ms=probe.forward_ms[0],
        prefill_cpu_ms=probe.prefill_cpu_ms if device.type == "cpu" else None,
        decode_ms_per_token=(sum(decode) / len(decode)) if decode else None,
        decode_steps=len(decode),
        e2e_ms=e2e,
        kv_bytes=probe.kv_after_prefill,
        peak_mem_bytes=peak,
        peak_mem_delta_bytes=delta,
        stats=stats,
        transfer_note=note,
    )


# ---------------------------------------------------------------------------- a benchmark


@dataclass
class Case:
    """One token count: the processor output and what Stage 1 sees in the image."""

    tokens_requested: int
    inputs: dict[str, Any]
    image_size: tuple[int, int]  # (width, height) px
    preprocess_ms: float
    vision_tokens: int
    text_tokens: int
    query_tokens: int  # text tokens after the image (the instruction)
    grid_thw: tuple[int, int, int]
    level: int
    global_entropy: float


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return float(a) / float(b) if a is not None and b else None


def schedule_of(method: str, case: Case, stats: list[erase.ImageStats]) -> Schedule:
    if method == "base" or not stats:
        return Schedule.base(case.text_tokens, case.vision_tokens)
    layers = {st.layer for st in stats}
    layer = max((x for x in layers if x is not None), default=None)
    return Schedule(
        text_tokens=case.text_tokens,
        vision_tokens=sum(st.tokens_total for st in stats),
        after_stage1=sum(st.tokens_after_stage1 for st in stats),
        after_stage2=sum(st.tokens_after_stage2 for st in stats),
        layer=layer,
        query_tokens=case.query_tokens if layer is not None else 0,
    )


def expected_kv_tokens(method: str, schedule: Schedule, layers: int) -> float:
    """Cached tokens per layer (mean over layers) that the schedule implies after prefill."""
    full = schedule.text_tokens + schedule.vision_tokens
    first = schedule.text_tokens + schedule.after_stage1
    later = schedule.text_tokens + schedule.after_stage2
    if method == "base":
        return float(full)
    if schedule.layer is None:
        return float(first)
    if not named_strategy(method, 1.0).evict:  # fastv, polymorphic: layers 0..k keep everything Stage 1 kept
        k = schedule.layer
        return ((k + 1) * first + (layers - k - 1) * later) / layers
    return float(later)


def summarise(
    method: str,
    case: Case,
    runs: list[RunResult],
    text_shape: TextShape,
    vision_shape: VisionShape,
) -> dict[str, Any]:
    """One JSON record: medians over the repeats, the schedule, the FLOP model."""
    stats = runs[-1].stats
    schedule = schedule_of(method, case, stats)
    flops = llm_prefill_flops(text_shape, schedule)
    base_flops = llm_prefill_flops(text_shape, Schedule.base(case.text_tokens, case.vision_tokens))["total"]
    layer_ids = sorted({st.layer for st in stats if st.layer is not None})
    rec: dict[str, Any] = {
        "method": method,
        "vision_tokens": case.vision_tokens,
        "tokens_requested": case.tokens_requested,
        "text_tokens": case.text_tokens,
        "prompt_tokens": case.text_tokens + case.vision_tokens,
        "image_size": list(case.image_size),
        "image_level": case.level,
        "global_entropy": round(case.global_entropy, 4),
        "level": stats[0].level if stats and stats[0].level else case.level,  # 0: the method scores no entropy
        "layer": layer_ids[-1] if layer_ids else None,
        "tokens_after_stage1": schedule.after_stage1,
        "tokens_kept": schedule.after_stage2,
        "kept_fraction": round(schedule.after_stage2 / max(1, case.vision_tokens), 6),
        "vit_ms": _median([r.vit_ms for r in runs]),
        "prefill_ms": _median([r.prefill_ms for r in runs]),
        "prefill_cpu_ms": _median([r.prefill_cpu_ms for r in runs]),
        "decode_ms_per_token": _median([r.decode_ms_per_token for r in runs]),
        "e2e_ms": _median([r.e2e_ms for r in runs]),
        "preprocess_ms": case.preprocess_ms,
        "kv_bytes": int(statistics.median([r.kv_bytes for r in runs])),
        "kv_tokens_expected": round(expected_kv_tokens(method, schedule, text_shape.layers), 3),
        "peak_mem_bytes": int(statistics.median([r.peak_mem_bytes for r in runs])),
        "peak_mem_delta_bytes": int(statistics.median([r.peak_mem_delta_bytes for r in runs])),
        "llm_prefill_flops": flops["total"],
        "llm_prefill_flops_parts": {k: v for k, v in flops.items() if k != "total"},
        "predicted_speedup": base_flops / flops["total"],
        "vit_flops": vit_flops(vision_shape, case.grid_thw),
        "decode_steps": runs[-1].decode_steps,
        "repeats": len(runs),
        "samples_ms": {
            "vit": [round(r.vit_ms, 3) for r in runs],
            "prefill": [round(r.prefill_ms, 3) for r in runs],
            "prefill_cpu": [None if r.prefill_cpu_ms is None else round(r.prefill_cpu_ms, 3) for r in runs],
            "decode_per_token": [None if r.decode_ms_per_token is None else round(r.decode_ms_per_token, 3) for r in runs],
            "e2e": [round(r.e2e_ms, 3) for r in runs],
        },
    }
    return rec


def add_ratios(records: list[dict[str, Any]]) -> None:
    """Measured ratios against the base record of the same token count (None without one).

    measured_speedup is LLM prefill time, like predicted_speedup; the *_vit_prefill
    pair adds the vision tower on both sides.
    """
    base = {r["vision_tokens"]: r for r in records if r["method"] == "base"}
    for r in records:
        b = base.get(r["vision_tokens"])
        if b is None:
            for key in ("measured_speedup", "measured_speedup_paired", "measured_speedup_cpu",
                        "predicted_speedup_vit_prefill", "measured_speedup_vit_prefill",
                        "e2e_speedup", "kv_fraction", "kv_fraction_expected", "decode_speedup"):
                r[key] = None
        else:
            r["measured_speedup"] = _ratio(b["prefill_ms"], r["prefill_ms"])
            # Each repeat runs every method back to back: the ratio within a repeat is
            # less exposed to load that drifts over minutes (a shared machine).
            pairs = zip(b["samples_ms"]["prefill"], r["samples_ms"]["prefill"])
            r["measured_speedup_paired"] = _median([_ratio(x, y) for x, y in pairs])
            # Process CPU time counts work, not waiting for a core another process holds.
            r["measured_speedup_cpu"] = _ratio(b["prefill_cpu_ms"], r["prefill_cpu_ms"])
            r["predicted_speedup_vit_prefill"] = _ratio(
                b["vit_flops"] + b["llm_prefill_flops"], r["vit_flops"] + r["llm_prefill_flops"]
            )
            r["measured_speedup_vit_prefill"] = _ratio(
                (b["vit_ms"] or 0) + b["prefill_ms"], (r["vit_ms"] or 0) + r["prefill_ms"]
            )
            r["e2e_speedup"] = _ratio(b["e2e_ms"], r["e2e_ms"])
            r["kv_fraction"] = _ratio(r["kv_bytes"], b["kv_bytes"])
            r["kv_fraction_expected"] = _ratio(r["kv_tokens_expected"], b["kv_tokens_expected"])
            r["decode_speedup"] = _ratio(b["decode_ms_per_token"], r["decode_ms_per_token"])
        r["measured_over_predicted"] = _ratio(r["measured_speedup"], r["predicted_speedup"])
        r["measured_cpu_over_predicted"] = _ratio(r["measured_speedup_cpu"], r["predicted_speedup"])
        for key, value in list(r.items()):
            if isinstance(value, float):
                r[key] = round(value, 4)


def run_benchmark(
    model: torch.nn.Module,
    cases: list[Case],
    methods: list[str],
    profile: erase.Profile,
    final_keep_ratio: float,
    *,
    new_tokens: int,
    repeats: int,
    warmup: int = 1,
    device: torch.device,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every (method, token count) measured; returns the records and run facts."""
    text_shape = TextShape.from_config(model.config.text_config)
    vision_shape = VisionShape.from_config(model.config.vision_config)
    memory = PeakMemory(device)
    records: list[dict[str, Any]] = []
    notes: set[str] = set()
    for case in cases:
        for w in range(warmup):
            for m in methods:
                t0 = time.perf_counter()
                run_once(model, case.inputs, m, profile, final_keep_ratio, new_tokens, memory)
                log(f"  warm-up {w + 1}/{warmup} {m:8s} {case.vision_tokens:6d} tokens  {time.perf_counter() - t0:7.1f} s")
        runs: dict[str, list[RunResult]] = {m: [] for m in methods}
        for r in range(repeats):
            for m in methods:  # interleaved: A B C A B C ...
                res = run_once(model, case.inputs, m, profile, final_keep_ratio, new_tokens, memory)
                runs[m].append(res)
                if res.transfer_note:
                    notes.add(res.transfer_note)
                log(
                    f"  repeat {r + 1}/{repeats}  {m:8s} {case.vision_tokens:6d} tokens  "
                    f"vit {res.vit_ms:8.1f} ms  prefill {res.prefill_ms:8.1f} ms  e2e {res.e2e_ms:8.1f} ms"
                )
        for m in methods:
            records.append(summarise(m, case, runs[m], text_shape, vision_shape))
    add_ratios(records)
    facts = {"peak_mem_source": memory.source, "profile_transfer": sorted(notes)}
    return records, facts


def numpy_level(image: Any, profile: erase.Profile, final_keep_ratio: float, token_px: int) -> tuple[int, float]:
    """Stage 1's level and global entropy of an image already on the token grid."""
    arr = np.asarray(image.convert("RGB"))
    result = erase.stage1.select(
        erase.stage1.patch_entropy_rgb(arr, token_px, profile.stage1.entropy.grayscale_rounding), profile, final_keep_ratio
    )
    return result.level, result.global_entropy


def machine_facts(device: torch.device) -> dict[str, Any]:
    import platform

    import transformers

    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    try:
        facts["cpu"] = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        facts["cpu"] = platform.processor() or None
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
    try:
        facts["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return facts
