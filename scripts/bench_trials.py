"""Trials per minute of the calibrator, with and without the teacher-forced shortcut.

Usage: python scripts/bench_trials.py [--model PATH|demo] [--items N] [--trials T]
Without --model it builds a tiny random Qwen2.5-VL whose own answers are the references
(so every item is base-correct), as the calibrator's tests do.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--trials", type=int, default=6)
    args = ap.parse_args()

    from erase_calibrate.answering import greedy_answer, item_inputs
    from erase_calibrate.calibration import sources
    from erase_calibrate.calibration.base_answers import CalibrationItem
    from erase_calibrate.calibration.run import CalibrationConfig, template_profile
    from erase_calibrate.calibration.trials import TrialRunner
    from erase_calibrate.model_loading import load_model

    tmp = Path(tempfile.mkdtemp())
    if args.model is None:
        from tiny_qwen import build_processor, build_tiny_qwen25vl, build_tokenizer, make_image

        tok = build_tokenizer()
        build_tiny_qwen25vl(tokenizer=tok).save_pretrained(tmp / "model")
        build_processor(tok).save_pretrained(tmp / "model")
        loaded = load_model(str(tmp / "model"))
        from erase_calibrate.benchmarks.items import Item

        items = []
        for i in range(args.items):
            buf = io.BytesIO()
            make_image(224, 224, i).save(buf, format="PNG")
            items.append(Item("chartqa", f"x{i}", "q", f"What is shown {i}?", ("",), buf.getvalue()))
        calib = []
        for it in items:
            ans = greedy_answer(loaded.model, loaded.processor, item_inputs(loaded.processor, it), 8)
            calib.append(CalibrationItem(it, ans, 1.0))
        score = lambda item, pred: 1.0 if pred == next(c.answer.text for c in calib if c.item is item) else 0.0  # noqa: E731
    else:
        loaded = load_model(args.model)
        pool = sources.item_pool(sources.default_names(args.model)[0], data_dir=None, limit=args.items * 2, seed=0)
        calib = []
        for it in pool:
            ans = greedy_answer(loaded.model, loaded.processor, item_inputs(loaded.processor, it), 8)
            if sources.score(it, ans.text) >= 0.5:
                calib.append(CalibrationItem(it, ans, 1.0))
            if len(calib) >= args.items:
                break
        score = sources.score
    template = template_profile(loaded, CalibrationConfig(model=args.model or "tiny", levels=4))
    rng = np.random.default_rng(0)
    configs = []
    for _ in range(args.trials):
        t1 = float(rng.uniform(1.0, 5.0))
        configs.append(((t1, t1 * 0.7, t1 * 0.4), (0.8, float(rng.uniform(0.3, 0.8)), float(rng.uniform(0.2, 0.7)), 0.3)))
    for fast in (True, False):
        runner = TrialRunner(loaded, {"bench": calib}, template, score, alpha=0.65, max_new_tokens=8, fast=fast)
        runner.prepare()
        runner.evaluate(*configs[0])  # warm-up
        times, generated = [], 0
        for th, keeps in configs:
            t0 = time.perf_counter()
            r = runner.evaluate(th, keeps)
            times.append(time.perf_counter() - t0)
            generated += r.generated
        runner.close()
        med = statistics.median(times)
        print(f"{'teacher-forced check' if fast else 'generate and score  '}: median {med * 1000:8.1f} ms per trial "
              f"({len(calib)} items) = {60 / med:6.1f} trials/min; items generated {generated}/{len(calib) * len(configs)}")


if __name__ == "__main__":
    main()
