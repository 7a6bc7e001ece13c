"""Quality bars of the demo model, measured on held-out generated items.

    python -m erase_calibrate.demo.evaluate [--model DIR] [--items 360] [--json FILE]

1. base accuracy: greedy answers of the unpruned model (bar: >= 90%);
2. random 40%: Stage 1 keeps a random 40% of each image's vision tokens
   (``Strategy(stage1="random", stage1_keep_ratio=0.4, stage2=False)``); it
   must clearly drop accuracy;
3. entropy 40%: Stage 1 entropy pruning at the same average keep ratio (a
   profile whose four levels all keep 40%, Stage 2 off); on simple images it
   must keep >= 95% of their base accuracy.

Also reported: both pruned runs on complex images, and an adaptive hand-made
profile (simple levels keep little, complex levels much) whose realised
average keep ratio over the held-out items is also about 40%.
Accuracy is `tasks.score` (exact match after lowercasing and stripping) of
greedy answers produced with `model.generate`, batched and left padded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from typing import Any, Sequence

import torch

import erase
from erase.profile import Profile

from .. import models
from ..models.demo import MAX_PIXELS, MIN_PIXELS, MODEL_ID, demo_model_path, load_demo
from ..tasks import decode, encode_batch
from ..tasks.sources import demo as tasks

RANDOM_40 = erase.named_strategy("random", 0.4)
STAGE1_ONLY = erase.strategy.STAGE1_ONLY
# Between the simple backgrounds (median patch entropy <= ~0.5 nats) and the complex ones (>= ~2.5).
DEMO_THRESHOLDS = (3.6, 2.0, 0.3)
# Adaptive: simple levels keep 15%, complex ones 65%; about 40% on average over the balanced split.
ADAPTIVE_KEEP = (0.65, 0.65, 0.15, 0.15)


def demo_profile(
    model: Any,
    keep_ratios: Sequence[float] = (0.4, 0.4, 0.4, 0.4),
    thresholds: Sequence[float] = DEMO_THRESHOLDS,
    *,
    final_keep_ratio: float = 0.1,
    early_layer: int = 1,
    late_layer: int = 3,
    name: str = "demo-manual",
) -> Profile:
    """A hand-made profile for the demo model (fingerprint read from the model)."""
    return models.template(
        model, name=name, model_id=MODEL_ID, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, levels=len(keep_ratios),
        thresholds=thresholds, keep_ratios=keep_ratios, final_keep_ratio=final_keep_ratio, early_layer=early_layer,
        late_layer=late_layer, source="manual", date="2026-11-21",
    )


@torch.no_grad()
def answer_items(
    model: Any, processor: Any, items: Sequence[tasks.Item], *, batch: int = 24, max_new_tokens: int = 10
) -> tuple[list[str], list[float]]:
    """Greedy answers (decoded, stripped) and, under an `erase.apply` handle, each item's
    realised Stage 1 keep ratio (1.0 without one)."""
    handle = getattr(model, "_erase_handle", None)
    answers: list[str] = []
    kept: list[float] = []
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        enc = encode_batch(processor, chunk)
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
        answers.extend(decode(model, processor, row).text for row in out[:, enc["input_ids"].shape[1] :].tolist())
        if handle is not None:
            for per_sample in handle.stats:
                kept.extend(st.tokens_after_stage1 / st.tokens_total for st in per_sample)
        else:
            kept.extend(1.0 for _ in chunk)
    return answers, kept


def accuracy(items: Sequence[tasks.Item], answers: Sequence[str]) -> float:
    return sum(tasks.score(it, a) for it, a in zip(items, answers)) / max(1, len(items))


def _summary(items: Sequence[tasks.Item], answers: Sequence[str], kept: Sequence[float]) -> dict[str, Any]:
    groups: dict[str, list[int]] = {"all": list(range(len(items)))}
    for i, it in enumerate(items):
        groups.setdefault(it.metadata["complexity"], []).append(i)
        groups.setdefault("task:" + it.metadata["task"], []).append(i)
        groups.setdefault("background:" + it.metadata["background"], []).append(i)
    out: dict[str, Any] = {}
    for name, idx in groups.items():
        out[name] = {
            "n": len(idx),
            "accuracy": round(accuracy([items[i] for i in idx], [answers[i] for i in idx]), 4),
            "keep": round(sum(kept[i] for i in idx) / len(idx), 4),
        }
    return out


def run_config(model: Any, processor: Any, items: Sequence[tasks.Item], profile: Profile | None, strategy=None, **kw) -> dict[str, Any]:
    ctx = erase.apply(model, profile, strategy=strategy or erase.Strategy()) if profile is not None else nullcontext()
    with ctx:
        answers, kept = answer_items(model, processor, items, **kw)
    return {"summary": _summary(items, answers, kept), "answers": answers}


def quality_bars(model: Any, processor: Any, items: Sequence[tasks.Item], *, batch: int = 24, log=print) -> dict[str, Any]:
    """The three bars (plus the adaptive profile) on `items`; see the module docstring."""
    configs = {
        "base": (None, None),
        "random_40": (demo_profile(model), RANDOM_40),
        "entropy_40": (demo_profile(model), STAGE1_ONLY),
        "entropy_adaptive": (demo_profile(model, ADAPTIVE_KEEP), STAGE1_ONLY),
    }
    results: dict[str, Any] = {}
    for name, (profile, strategy) in configs.items():
        t0 = time.perf_counter()
        results[name] = run_config(model, processor, items, profile, strategy, batch=batch)
        s = results[name]["summary"]
        log(
            f"{name:17s} all {s['all']['accuracy']:.3f} (keep {s['all']['keep']:.3f})  "
            f"simple {s['simple']['accuracy']:.3f} (keep {s['simple']['keep']:.3f})  "
            f"complex {s['complex']['accuracy']:.3f} (keep {s['complex']['keep']:.3f})  [{time.perf_counter() - t0:.0f} s]"
        )
    base = results["base"]["summary"]
    rnd = results["random_40"]["summary"]
    ent = results["entropy_40"]["summary"]
    bars = {
        "base_accuracy": base["all"]["accuracy"],
        "base_accuracy_ok": base["all"]["accuracy"] >= 0.90,
        "random_40_accuracy": rnd["all"]["accuracy"],
        "random_40_drop": round(base["all"]["accuracy"] - rnd["all"]["accuracy"], 4),
        "random_40_simple_accuracy": rnd["simple"]["accuracy"],
        "entropy_40_simple_accuracy": ent["simple"]["accuracy"],
        "base_simple_accuracy": base["simple"]["accuracy"],
        "entropy_40_simple_retained": round(ent["simple"]["accuracy"] / max(1e-9, base["simple"]["accuracy"]), 4),
    }
    bars["entropy_40_simple_ok"] = bars["entropy_40_simple_retained"] >= 0.95
    return {"bars": bars, "results": results}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m erase_calibrate.demo.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint directory (default: the shipped demo model)")
    p.add_argument("--items", type=int, default=360, help="held-out items (test split; 36 cover every task x background)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write the full results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = args.model or str(demo_model_path())
    model, processor = load_demo(path)
    items = tasks.heldout_items(args.items, seed=args.seed)
    print(f"demo evaluate: {path}, {len(items)} held-out items (seed {args.seed})", flush=True)
    report = quality_bars(model, processor, items, batch=args.batch)
    b = report["bars"]
    print(
        f"bar 1  base accuracy {b['base_accuracy']:.3f} (>= 0.90: {'ok' if b['base_accuracy_ok'] else 'MISSED'})\n"
        f"bar 2  random 40% keep {b['random_40_accuracy']:.3f}: drop {b['random_40_drop']:.3f} "
        f"(simple images {b['random_40_simple_accuracy']:.3f})\n"
        f"bar 3  entropy 40% keep on simple images {b['entropy_40_simple_accuracy']:.3f} vs base "
        f"{b['base_simple_accuracy']:.3f}: {b['entropy_40_simple_retained']:.1%} retained "
        f"(>= 95%: {'ok' if b['entropy_40_simple_ok'] else 'MISSED'})"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"model": path, "items": len(items), "seed": args.seed, **report}, fh, indent=1)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
