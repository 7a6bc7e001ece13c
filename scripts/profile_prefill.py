"""Where ViT + prefill time goes under each erase-bench method (wall-clock timers, no profiler).

    OMP_WAIT_POLICY=PASSIVE python scripts/profile_prefill.py --model qwen2.5-vl-7b-mini \
        --tokens 4096 --methods base,erase,stage1,fastv,random --repeats 2

Each method: one warm-up generate(max_new_tokens=1) (ViT + prefill only), then
`--repeats` timed ones; the median of each timer is printed. Timers wrap the
runtime's functions from outside (nothing in `erase` is edited):

- ERASE Stage 1 (the entry pre-hook, `Engine._prefill`): patch entropy straight
  from pixel_values (`erase.pixels.token_entropy`: the C kernel on CPU), level +
  top-k (`stage1.select`); the rest of it is embedding, feature scatter, M-RoPE
  positions and the repack;
- ERASE Stage 2 (`Engine._layer_post` at layer k): rotated queries, keys
  (`repeat_kv`), scores (`erase.decoder`, `erase.stage2`), KV eviction
  (`erase._hf.evict_layers`), the later layers' masks and rotary tables;
- AdaVTP and Polymorphic: the ViT attention they rank by, recomputed inside
  the vision tower (`received_attention`, counted in the ViT's time); in the
  entry hook, the per-token attention, AdaVTP's greedy (with its erank),
  Polymorphic's density peaks and the cluster means; at layer k,
  Polymorphic's rater selection and merge;
- the decoder layers' attention modules (projections, rotary, SDPA) with SDPA
  alone, and the MLP modules; the rest is norms, embeddings, the LM head and glue.

On CUDA nothing here synchronises: use it on CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import statistics
import time
import warnings
from collections import defaultdict

import torch

import erase
import erase._hf as hf
import erase.adapters.qwen2_5_vl as qa
import erase.adavtp as ada
import erase.polymorphic as poly
import erase.decoder as dec
import erase.methods as em
import erase.engine as eng
import erase.stage1 as s1
from erase.references import with_adavtp_reference
from erase_calibrate.bench import inputs as binputs
from erase_calibrate.bench import measure
from erase_calibrate.models import presets
from erase_calibrate.models.processor import build_processor

TIMES: dict[str, float] = defaultdict(float)
STATE = {"llm": False}


def timed(name, fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            TIMES[name] += time.perf_counter() - t0

    return wrapper


@contextlib.contextmanager
def patched():
    """Wrap the runtime's functions with timers; undo on exit."""
    targets = [
        (qa, "unpatchify", "S1 pixels from pixel_values (unpatchify)"),
        (qa, "token_entropy", "S1 patch entropy from pixel_values (token_entropy)"),
        (qa, "grayscale", "S1 grayscale"),
        (s1, "patch_entropy", "S1 patch entropy"),
        (s1, "patch_entropy_rgb", "S1 patch entropy"),
        (s1, "select", "S1 level + top-k"),
        (eng.Engine, "_prefill", "S1 entry hook total"),
        (eng.Engine, "_layer_post", "S2 layer post-hook total"),
        (eng.Engine, "_layer_pre", "later-layer pre-hooks"),
        (dec.Decoder, "rotated_queries", "S2 rotated queries"),
        (dec.Decoder, "keys", "S2 keys (repeat_kv)"),
        (hf, "evict_layers", "S2 KV eviction"),
        (dec.Decoder, "after_prune", "S2 later layers' mask + rotary"),
        (qa, "received_attention", "ViT: attention recomputed for ranking"),
        (eng.Engine, "_token_attention", "S1 attention per token"),
        (ada, "select", "S1 AdaVTP greedy (with erank)"),
        (ada, "erank", "S1 AdaVTP erank"),
        (poly, "stage1", "S1 Polymorphic density peaks"),
        (eng.Engine, "_merge_stage1", "S1 cluster means into centres"),
        (eng.Engine, "_select_hidden", "S2 Polymorphic total"),
        (poly, "stage2", "S2 Polymorphic raters + density peaks"),
    ]
    saved = []
    for owner, attr, name in targets:
        if attr not in vars(owner) and not hasattr(owner, attr):
            continue  # the runtime moved or renamed it: time what exists
        orig = getattr(owner, attr)
        saved.append((owner, attr, orig))
        setattr(owner, attr, timed(name, orig))
    # the selector registry holds its scoring function: time it there
    selector = em.STAGE2_SELECTORS["attention"]
    em.STAGE2_SELECTORS["attention"] = dataclasses.replace(
        selector, score=timed("S2 scores (softmax over keys)", selector.score)
    )
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]

    def sdpa_timed(*a, **k):
        if not STATE["llm"]:
            return sdpa(*a, **k)
        t0 = time.perf_counter()
        try:
            return sdpa(*a, **k)
        finally:
            TIMES["LLM SDPA"] += time.perf_counter() - t0

    ALL_ATTENTION_FUNCTIONS["sdpa"] = sdpa_timed
    try:
        yield
    finally:
        ALL_ATTENTION_FUNCTIONS["sdpa"] = sdpa
        em.STAGE2_SELECTORS["attention"] = selector
        for owner, attr, orig in reversed(saved):
            setattr(owner, attr, orig)


def module_timer(module, name, flag=None):
    t = {}

    def pre(m, a):
        t["t0"] = time.perf_counter()
        if flag:
            STATE[flag] = True

    def post(m, a, o):
        TIMES[name] += time.perf_counter() - t["t0"]
        if flag:
            STATE[flag] = False

    return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-vl-7b-mini", choices=sorted(presets.PRESETS))
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--methods", default="base,erase,stage1,fastv,random")
    ap.add_argument("--final-keep-ratio", type=float, default=0.15)
    ap.add_argument("--image-kind", default="mixed", choices=binputs.IMAGE_KINDS)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    preset = presets.PRESETS[args.model]
    tok = presets.default_tokenizer()
    model = presets.build_preset_model(preset, tok)
    prof = erase.load_profile(preset.profile)
    image = binputs.synthetic_image(args.tokens, args.image_kind)
    proc = build_processor(tok, max_pixels=image.width * image.height)
    batch = binputs.build_inputs(proc, image)
    if "adavtp" in args.methods:  # as erase-bench: reference statistics from this image (timing only)
        prof = with_adavtp_reference(prof, model, [batch])
    print(f"{args.model}, {args.tokens} vision tokens ({args.image_kind}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; medians of {args.repeats}")
    hooks = module_timer(model.model.visual, "ViT") + module_timer(model, "prefill forward", flag="llm")
    for layer in model.model.language_model.layers:
        hooks += module_timer(layer.self_attn, "LLM attention modules (proj + rotary + SDPA)")
        hooks += module_timer(layer.mlp, "LLM MLP modules")
    try:
        for method in measure.parse_methods(args.methods):
            strategy = measure.strategy_for(method, args.final_keep_ratio)
            runs = []
            # patch before apply(): the engine binds its layer hooks at install time
            with torch.no_grad(), patched():
                handle = None
                if strategy is not None:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        handle = erase.apply(
                            model, prof, final_keep_ratio=args.final_keep_ratio, allow_transfer=True, strategy=strategy
                        )
                try:
                    model.generate(**batch, max_new_tokens=1, do_sample=False)  # warm-up
                    for _ in range(args.repeats):
                        TIMES.clear()
                        model.generate(**batch, max_new_tokens=1, do_sample=False)
                        runs.append(dict(TIMES))
                finally:
                    if handle is not None:
                        handle.remove()
            keys = list(dict.fromkeys(k for r in runs for k in r))
            med = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in keys}
            pf = med.get("prefill forward", 0.0)
            print(f"\n## {method}: ViT {med.get('ViT', 0) * 1e3:.0f} ms, prefill forward {pf * 1e3:.0f} ms")
            if "ViT: attention recomputed for ranking" in med:
                print(f"  {'ViT: attention recomputed for ranking':48s} {med['ViT: attention recomputed for ranking'] * 1e3:9.1f} ms  (in the ViT's time)")
            order = ["prefill forward", "LLM attention modules (proj + rotary + SDPA)", "LLM SDPA", "LLM MLP modules",
                     "S1 entry hook total", "S1 pixels from pixel_values (unpatchify)", "S1 grayscale", "S1 patch entropy",
                     "S1 patch entropy from pixel_values (token_entropy)",
                     "S1 level + top-k", "S1 attention per token", "S1 AdaVTP greedy (with erank)", "S1 AdaVTP erank",
                     "S1 Polymorphic density peaks", "S1 cluster means into centres", "S2 layer post-hook total",
                     "S2 Polymorphic total", "S2 Polymorphic raters + density peaks", "S2 rotated queries", "S2 keys (repeat_kv)",
                     "S2 scores (softmax over keys)", "S2 KV eviction", "S2 later layers' mask + rotary",
                     "later-layer pre-hooks"]
            for k in order:
                if k in med and k != "prefill forward":
                    print(f"  {k:48s} {med[k] * 1e3:9.1f} ms  {med[k] / pf:6.1%} of prefill")
            if "S1 entry hook total" in med:
                parts = sum(med.get(k, 0.0) for k in ("S1 pixels from pixel_values (unpatchify)", "S1 patch entropy",
                                                       "S1 patch entropy from pixel_values (token_entropy)",
                                                       "S1 level + top-k", "S1 attention per token",
                                                       "S1 AdaVTP greedy (with erank)", "S1 Polymorphic density peaks",
                                                       "S1 cluster means into centres"))
                other = med["S1 entry hook total"] - parts
                print(f"  {'S1 entry hook: embeddings, scatter, positions, repack':48s} {other * 1e3:9.1f} ms  {other / pf:6.1%} of prefill")
            named = sum(med.get(k, 0.0) for k in ("LLM attention modules (proj + rotary + SDPA)", "LLM MLP modules",
                                                   "S1 entry hook total", "S2 layer post-hook total", "later-layer pre-hooks"))
            print(f"  {'rest (norms, embeddings, LM head, masks, glue)':48s} {(pf - named) * 1e3:9.1f} ms  {(pf - named) / pf:6.1%} of prefill")
    finally:
        for h in hooks:
            h.remove()


if __name__ == "__main__":
    main()
