"""Cost of a calibration's trials: the calibrator's path against generate-and-score of every item.

Usage:
    HF_HUB_OFFLINE=1 python scripts/bench_trials.py --model demo --trials 30 [--seeds 0,1,...] [--batch-size 8]
        [--json F] [--only calibrator|reference] [--keep-step 0.01] [--cache BASE_ANSWER_DIR]

Runs the same seeded study (TPE, --trials trials, the demo's 70 calibration items) twice,
each in its own journal file:

- **calibrator**: what `erase-calibrate` does: the (item, kept tokens) memo, batches of
  --batch-size, a teacher-forced check first (generation only where it fails), and trials
  stopped once they are ruled out under the selection rule;
- **reference**: every item of every trial generated and scored, one at a time, no memo, no
  stopping (the paper's per-trial work, without its re-sampling).

Both tell Optuna the same thing (a trial ranked below the best complete one is PRUNED in both),
so the two studies must agree trial by trial: the same parameters, states and, for complete
trials, the same accuracy and F, and the same chosen profile. The script checks that and exits
1 if not. With several --seeds, each seed (its own calibration items and study) runs both paths,
and the summary gives the ratio per seed and its median. Language-model tokens are counted at the
language model's forward (batch x sequence length per call, padding included, decode steps included).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="demo")
    ap.add_argument("--items", type=int, default=70)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", default=None, help="comma-separated seeds, each run side by side (overrides --seed)")
    ap.add_argument("--alpha", type=float, default=0.65)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--cache", default=None, help="base-answer cache folder (default: a temporary one)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--keep-step", type=float, default=0.01, help="the keep-ratio grid (the calibrator's: 0.01)")
    ap.add_argument("--only", choices=("calibrator", "reference"), default=None, help="run one path (no comparison)")
    args = ap.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    results = [run_seed(args, seed) for seed in seeds]
    if args.only:
        return 0
    if len(results) == 1:
        result = results[0]
    else:
        ratios = [r["token_ratio"] for r in results]
        result = {
            "command": results[0]["command"],
            "machine": results[0]["machine"],
            "date": results[0]["date"],
            "trials": args.trials,
            "seeds": seeds,
            "per_seed": [
                {"seed": seed, "calibrator_tokens_per_trial": r["calibrator"]["tokens_per_trial_mean"],
                 "reference_tokens_per_trial": r["reference"]["tokens_per_trial_mean"], "token_ratio": r["token_ratio"],
                 "calibrator_complete": r["calibrator"]["complete"], "identical": r["identical"],
                 "chosen": r["calibrator"]["chosen"]}
                for seed, r in zip(seeds, results)
            ],
            "token_ratio_median": statistics.median(ratios),
            "token_ratio_min": min(ratios),
            "token_ratio_max": max(ratios),
            "identical": all(r["identical"] for r in results),
        }
        for row in result["per_seed"]:
            print(f"seed {row['seed']}: {row['token_ratio']:.1f}x ({row['calibrator_tokens_per_trial']:,.0f} vs "
                  f"{row['reference_tokens_per_trial']:,.0f} tokens/trial, {row['calibrator_complete']} complete trials)")
        print(f"median {result['token_ratio_median']:.1f}x (min {result['token_ratio_min']:.1f}x, max {result['token_ratio_max']:.1f}x); "
              + ("identical everywhere" if result["identical"] else "DIFFERENT somewhere"))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["identical"] else 1


def run_seed(args: argparse.Namespace, seed: int) -> dict:
    import torch

    from erase_calibrate import tasks as sources
    from erase_calibrate.search.base_answers import AnswerCache, cache_key, collect_correct
    from erase_calibrate.search.memo import Memo
    from erase_calibrate.search.run import CalibrationConfig, template_profile
    from erase_calibrate.search.search_space import SearchSpace
    from erase_calibrate.search.study import open_study, run_trials, select
    from erase_calibrate.search.trials import TrialRunner
    from erase_calibrate import models
    from erase_calibrate.models import load as load_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-trials-"))
    loaded = load_model(args.model)
    name = sources.default_names(models.default_tasks(args.model))[0]
    pool = sources.item_pool(name, data_dir=None, limit=args.items * 3, seed=seed)
    key = cache_key(args.model, loaded.revision, name, loaded.min_pixels, loaded.max_pixels, args.max_new_tokens)
    cache = AnswerCache(Path(args.cache or tmp / "base-answers"), key, name)
    items = collect_correct(loaded, name, pool, args.items, cache, sources.score, args.max_new_tokens, batch_size=args.batch_size)
    print(f"{len(items)} calibration items; torch threads {torch.get_num_threads()}", flush=True)
    template = template_profile(loaded, CalibrationConfig(model=args.model, levels=4))

    paths = {
        "calibrator": dict(fast=True, batch_size=args.batch_size, memo=Memo(), stop_early=True),
        "reference": dict(fast=False, batch_size=1, memo=None, stop_early=False),
    }
    if args.only:
        paths = {args.only: paths[args.only]}
    runs = {}
    for label, kw in paths.items():
        runner = TrialRunner(loaded, {name: items}, template, sources.score, alpha=args.alpha,
                             max_new_tokens=args.max_new_tokens, **kw)
        runner.prepare()
        space = SearchSpace(runner.global_entropies(), levels=4, keep_step=args.keep_step)
        study = open_study(str(tmp / f"{label}.journal"), label, tmp, seed)
        seconds: list[float] = []

        def timed(thresholds, keeps, ctx, runner=runner, seconds=seconds):
            t0 = time.perf_counter()
            r = runner.evaluate(thresholds, keeps, ctx)
            seconds.append(time.perf_counter() - t0)
            return r

        t0 = time.perf_counter()
        run_trials(study, space, timed, args.trials, rule="accuracy", memo=kw["memo"])
        wall = time.perf_counter() - t0
        runner.close()
        trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
        chosen = select(study, "accuracy")
        runs[label] = {"trials": trials, "seconds": seconds, "wall": wall, "chosen": chosen,
                       "features": (runner.feature_cache.hits if runner.feature_cache else None)}
        tokens = [t.user_attrs["tokens"] for t in trials]
        print(f"{label}: {statistics.mean(tokens):,.0f} tokens/trial, {60 * len(seconds) / sum(seconds):.1f} trials/min, "
              f"chosen trial {chosen.number}", flush=True)

    if args.only:
        per = runs[args.only]["trials"]
        hits = sum(t.user_attrs.get("memo_hits", 0) for t in per)
        ev = sum(t.user_attrs.get("evaluated", 0) for t in per)
        for t in per:
            u = t.user_attrs
            print(t.number, t.state.name, u.get("evaluated"), u.get("memo_hits"), u.get("generated"), u.get("tokens"),
                  round(u.get("accuracy", u.get("accuracy_at_most", 0)), 4))
        print(f"memo hit rate {hits / max(1, hits + ev):.0%}")
        return {}

    # ---- the two studies must agree
    a, b = runs["calibrator"]["trials"], runs["reference"]["trials"]
    problems = []
    if len(a) != len(b):
        problems.append(f"{len(a)} vs {len(b)} trials")
    for x, y in zip(a, b):
        if x.params != y.params or x.state != y.state:
            problems.append(f"trial {x.number}: params/state differ ({x.state.name} vs {y.state.name})")
        elif x.state.name == "COMPLETE" and (x.user_attrs["accuracy"], x.user_attrs["objective"]) != (
            y.user_attrs["accuracy"], y.user_attrs["objective"]
        ):
            problems.append(f"trial {x.number}: accuracy/F differ")
        elif x.state.name == "PRUNED" and not y.user_attrs["accuracy"] <= x.user_attrs.get("accuracy_at_most", x.user_attrs.get("accuracy")):
            problems.append(f"trial {x.number}: the reference's accuracy exceeds the early bound")
    ca, cb = runs["calibrator"]["chosen"], runs["reference"]["chosen"]
    if (ca.number, ca.user_attrs["thresholds"], ca.user_attrs["keep_ratios"]) != (
        cb.number, cb.user_attrs["thresholds"], cb.user_attrs["keep_ratios"]
    ):
        problems.append("the chosen configurations differ")

    def summary(label: str) -> dict:
        r = runs[label]
        trials = r["trials"]
        tokens = [t.user_attrs["tokens"] for t in trials]
        hits = sum(t.user_attrs.get("memo_hits", 0) for t in trials)
        evaluated = sum(t.user_attrs.get("evaluated", 0) for t in trials)
        return {
            "tokens_per_trial_mean": statistics.mean(tokens),
            "tokens_per_trial_median": statistics.median(tokens),
            "tokens_total": sum(tokens),
            "seconds_per_trial_mean": statistics.mean(r["seconds"]),
            "trials_per_minute": 60 * len(r["seconds"]) / sum(r["seconds"]),
            "wall_seconds": r["wall"],
            "items_evaluated": evaluated,
            "memo_hits": hits,
            "memo_hit_rate": hits / (hits + evaluated) if hits + evaluated else 0.0,
            "items_generated": sum(t.user_attrs.get("generated", 0) for t in trials),
            "ruled_out": sum(1 for t in trials if t.state.name == "PRUNED"),
            "complete": sum(1 for t in trials if t.state.name == "COMPLETE"),
            "chosen": {"trial": r["chosen"].number, "accuracy": r["chosen"].user_attrs["accuracy"],
                       "thresholds": r["chosen"].user_attrs["thresholds"], "keep_ratios": r["chosen"].user_attrs["keep_ratios"]},
            "per_trial": [
                {"number": t.number, "state": t.state.name, "tokens": t.user_attrs["tokens"],
                 "evaluated": t.user_attrs.get("evaluated"), "memo_hits": t.user_attrs.get("memo_hits"),
                 "generated": t.user_attrs.get("generated"),
                 "accuracy": t.user_attrs.get("accuracy", t.user_attrs.get("accuracy_at_most"))}
                for t in trials
            ],
        }

    result = {
        "command": " ".join(["python", *sys.argv]),
        "seed": seed,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "items": len(items),
        "trials": args.trials,
        "batch_size": args.batch_size,
        "calibrator": summary("calibrator"),
        "reference": summary("reference"),
        "identical": not problems,
        "problems": problems,
    }
    c, r = result["calibrator"], result["reference"]
    result["token_ratio"] = r["tokens_per_trial_mean"] / c["tokens_per_trial_mean"]
    result["speed_ratio"] = c["trials_per_minute"] / r["trials_per_minute"]
    print(f"tokens per trial: calibrator {c['tokens_per_trial_mean']:,.0f}, reference {r['tokens_per_trial_mean']:,.0f} "
          f"-> {result['token_ratio']:.1f}x fewer; trials/min {c['trials_per_minute']:.1f} vs {r['trials_per_minute']:.1f}; "
          f"memo hit rate {c['memo_hit_rate']:.0%}; {c['ruled_out']} of {args.trials} trials ruled out")
    print("identical trial results and pick" if not problems else "DIFFERENT: " + "; ".join(problems))
    return result


if __name__ == "__main__":
    sys.exit(main())
