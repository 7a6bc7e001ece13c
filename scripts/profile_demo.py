"""Prefill of the demo model without ERASE, with a profile, and with the profile keeping everything.

    HF_HUB_OFFLINE=1 python scripts/profile_demo.py [--profile demo] [--repeats 15]

erase-demo's six held-out samples; per sample the three runs are interleaved (base, profile,
keep-all, base, ...) after a warm-up of each, and the first forward of `generate(max_new_tokens=1)`
is timed (wall and the process's CPU time, as erase-bench's probe does). Prints per-sample medians,
the summed ratios, and then where ERASE's prefill goes: cProfile over the profile's runs, the
runtime's functions by own time (profiler overhead included, so only the shares count).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics

import torch

import erase
from erase_calibrate.bench.measure import Probe
from erase_calibrate.cli.demo_cmd import DEFAULT_SAMPLES
from erase_calibrate.demo import tasks
from erase_calibrate.demo.model import load_demo
from erase_calibrate.demo.train import encode


def prefill(model, inputs) -> tuple[float, float]:
    probe = Probe(model, sync=lambda: None)
    try:
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=1, do_sample=False)
    finally:
        probe.remove()
    return probe.forward_ms[0], probe.prefill_cpu_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, processor = load_demo()
    prof = erase.load_profile(args.profile)
    items = [tasks.make_item(i, seed=7, split="test", task=t, background=b) for i, (t, b) in enumerate(DEFAULT_SAMPLES)]
    runs = {"base": None, "profile": prof.stage2.final_keep_ratio, "keep-all": 1.0}
    totals = {k: [0.0, 0.0] for k in runs}
    print(f"demo model, profile {prof.name} v{prof.profile_version}, {args.threads} threads; medians of {args.repeats}")
    print(f"{'sample':<10} " + " ".join(f"{k + ' ms (CPU)':>20}" for k in runs))
    profiler = cProfile.Profile()
    for item in items:
        inputs = encode(processor, [item], with_answers=False)
        samples = {k: [] for k in runs}
        for rep in range(args.repeats + 1):
            for name, ratio in runs.items():
                handle = None if ratio is None else erase.apply(model, prof, final_keep_ratio=ratio)
                try:
                    if name == "profile" and rep > 0:
                        profiler.enable()
                    wall, cpu = prefill(model, inputs)
                    profiler.disable()
                finally:
                    if handle is not None:
                        handle.remove()
                if rep > 0:  # the first round warms up
                    samples[name].append((wall, cpu))
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in samples.items()}
        for k, (w, c) in med.items():
            totals[k][0] += w
            totals[k][1] += c
        print(f"{item.metadata.get('background', item.id):<10} " + " ".join(f"{w:9.1f} ({c:7.1f})" for w, c in med.values()))
    bw, bc = totals["base"]
    for k in ("profile", "keep-all"):
        w, c = totals[k]
        print(f"{k}: prefill {bw:.1f} -> {w:.1f} ms wall ({bw / w:.2f}x), {bc:.1f} -> {c:.1f} ms CPU ({bc / c:.2f}x)")
    print("\nERASE's prefill under cProfile (the profile's runs), runtime functions by own time:")
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    rows = [(v[2], v[3], f"{k[0].split('runtime/')[-1]}:{k[2]}") for k, v in stats.stats.items() if "runtime/erase" in k[0]]
    rows.sort(reverse=True)
    print(f"  whole prefill under the profiler: {total * 1e3 / (len(items) * args.repeats):.1f} ms per call")
    for own, cum, name in rows[:12]:
        print(f"  {name:60s} own {own / total:6.1%}  cumulative {cum / total:6.1%}")


if __name__ == "__main__":
    main()
