"""erase-calibrate end to end on a tiny model, plus the pure parts of the search."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from PIL import Image

import erase
from erase_calibrate.answering import greedy_answer, item_inputs
from erase_calibrate.benchmarks import load_items
from erase_calibrate.calibration.objective import level_shares, levels_of, normalised_accuracy, objective
from erase_calibrate.calibration.search_space import SearchSpace
from erase.testing import simple_image
from tiny_qwen import build_processor, build_tiny_qwen25vl, build_tokenizer, make_image

ITEMS = 6


# ----------------------------------------------------------------------------- pure parts
def test_thresholds_descend_by_construction():
    space = SearchSpace()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(200):
        t = study.ask()
        thresholds, keeps = space.suggest(t)
        assert all(a > b > 0 for a, b in zip(thresholds, thresholds[1:]))
        assert thresholds[0] <= math.log(256)
        assert 0.6 <= keeps[0] <= 0.9 and all(0.1 <= k <= 0.85 for k in keeps[1:])
        study.tell(t, 0.0)


def test_encode_decode_round_trip():
    space = SearchSpace()
    th, keeps = (1.69, 1.35, 1.17), (0.8268, 0.7514, 0.4947, 0.4034)
    dec = space.decode(space.encode(th, keeps))
    assert dec[0] == pytest.approx(th) and dec[1] == pytest.approx(keeps)


def test_objective_is_exactly_the_formula():
    h = [3.0, 1.5, 1.2, 0.1, 0.2]
    th = (2.0, 1.3, 0.5)
    assert levels_of(h, th).tolist() == [1, 2, 3, 4, 4]
    shares = level_shares(h, th)
    assert shares.tolist() == [0.2, 0.2, 0.2, 0.4]
    keeps = (0.9, 0.7, 0.5, 0.3)
    expected = 0.65 * 0.8 + 0.35 * (0.2 * 0.1 + 0.2 * 0.3 + 0.2 * 0.5 + 0.4 * 0.7)
    assert objective(0.65, 0.8, shares, keeps) == pytest.approx(expected)
    assert normalised_accuracy({"a": [True, True], "b": [True, False, False, False]}) == pytest.approx(0.625)


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A saved tiny model, and a ChartQA-schema dataset whose answers are the model's own."""
    root = tmp_path_factory.mktemp("calib")
    tok = build_tokenizer()
    processor = build_processor(tok)
    model = build_tiny_qwen25vl(tokenizer=tok)
    model.generation_config.max_new_tokens = 4
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")

    rows = []
    for i in range(ITEMS):
        im = make_image(224, 224, i) if i % 2 else simple_image(224, 224, i)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        rows.append({"image": {"bytes": buf.getvalue(), "path": None}, "question": f"What is shown {i}?", "answer": "", "type": "human_test"})
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = root / "data"
    data.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), data / "chartqa.parquet")
    items = load_items("chartqa", data_dir=data)
    for row, item in zip(rows, items):
        row["answer"] = greedy_answer(model, processor, item_inputs(processor, item), 4).text or "x"
    pq.write_table(pa.Table.from_pylist(rows), data / "chartqa.parquet")
    return root


def _calibrate(root: Path, out: Path, *extra: str, check: bool = True, **popen) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-c", "from erase_calibrate.cli.calibrate_cmd import main; main()",
        "--model", str(root / "model"), "--benchmarks", "chartqa", "--data-dir", str(root / "data"),
        "--per-benchmark", str(ITEMS), "--max-new-tokens", "4", "--out", str(out), "--quiet", "--seed", "1", *extra,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check:
        assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_calibrate_end_to_end_writes_a_loadable_profile(tiny_setup, tmp_path):
    out = tmp_path / "out"
    _calibrate(tiny_setup, out, "--iters", "4", "--levels", "2")
    profile = erase.load_profile(out / "model.v1.yaml")
    assert profile.calibration.source == "calibrated"
    assert profile.calibration.iterations == 4
    assert profile.calibration.datasets == {"chartqa": ITEMS}
    assert profile.num_levels == 2
    ada = profile.methods.adavtp  # AdaVTP's reference statistics, on the calibration items
    assert ada is not None and ada.images == ITEMS and ada.erank_avg >= 1.0 and 0.0 < ada.tau_max <= 2.0
    assert (out / "model.v1-report.md").read_text().startswith("# Calibration of")
    assert Image.open(out / "model.v1-trials.png").size[0] > 100
    study = optuna.load_study(
        study_name="model-erase",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "model-erase.journal"))),
    )
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4
    for t in done:
        ua = t.user_attrs
        assert {"accuracy", "objective", "mean_pruning", "c1", "c2", "feasible"} <= set(ua)
        assert ua["objective"] == pytest.approx(
            0.65 * ua["accuracy"] + 0.35 * sum(ua[f"c{i + 1}"] * (1 - k) for i, k in enumerate(ua["keep_ratios"]))
        )
    # the profile is the selected trial: highest accuracy among feasible ones, ties to F
    feasible = [t for t in done if t.user_attrs["feasible"]]
    best = max(feasible, key=lambda t: (t.user_attrs["accuracy"], t.value))
    assert list(profile.stage1.keep_ratios) == pytest.approx(best.user_attrs["keep_ratios"])

    # the runtime applies it to the same model
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_setup / "model")
    erase.apply(model, profile).remove()
    erase.apply(model, profile, strategy="adavtp").remove()

    # rerunning with more iterations continues the study and writes the next version
    _calibrate(tiny_setup, out, "--iters", "5", "--levels", "2")
    assert erase.load_profile(out / "model.v2.yaml").profile_version == 2
    assert (out / "model.v1.yaml").exists()
    study = optuna.load_study(study_name="model-erase", storage=study._storage)
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 5


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--alpha", "1.5"], "--alpha must be in [0, 1]"),
        (["--iters", "0"], "--iters must be a whole number in 1..1,000,000, got 0"),
        (["--benchmarks", "nosuchbench"], "nosuchbench"),
        (["--data-dir", "/nonexistent/dir"], "/nonexistent/dir"),
        (["--out", "/proc/erase-out"], "cannot write there"),
        (["--out", "/etc/hostname/sub"], "cannot write there"),
    ],
)
def test_bad_inputs_are_one_line_errors(tiny_setup, tmp_path, args, expect):
    res = _calibrate(tiny_setup, tmp_path / "o", *args, check=False)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert expect in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_unknown_model_is_one_line(tmp_path):
    cmd = [sys.executable, "-c", "from erase_calibrate.cli.calibrate_cmd import main; main()",
           "--model", "no-such-org/no-such-model", "--out", str(tmp_path / "o"), "--quiet", "--benchmarks", "chartqa"]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 2 and "cannot load model 'no-such-org/no-such-model'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def _journal_study(out: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "model-erase.journal")))
    return optuna.load_study(study_name="model-erase", storage=storage)


def test_kill_mid_study_and_resume(tiny_setup, tmp_path):
    out = tmp_path / "out"
    args = ["--iters", "12", "--levels", "2"]
    cmd = [
        sys.executable, "-c", "from erase_calibrate.cli.calibrate_cmd import main; main()",
        "--model", str(tiny_setup / "model"), "--benchmarks", "chartqa", "--data-dir", str(tiny_setup / "data"),
        "--per-benchmark", str(ITEMS), "--max-new-tokens", "4", "--out", str(out), "--quiet", "--seed", "1", *args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    before = []
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if not (out / "model-erase.journal").exists():
                continue
            states = [t.state for t in _journal_study(out).trials]
            if states.count(optuna.trial.TrialState.COMPLETE) >= 3 and optuna.trial.TrialState.RUNNING in states:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the calibrator finished before it could be killed mid-trial"
    before = {t.number: t.params for t in _journal_study(out).trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert not (out / "model.v1.yaml").exists()  # nothing half-written

    _calibrate(tiny_setup, out, *args)
    trials = _journal_study(out).trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 12, [(t.number, t.state.name, t.user_attrs.get("worker")) for t in trials]
    assert {t.number: t.params for t in complete if t.number in before} == before  # none lost
    assert len({tuple(sorted(t.params.items())) for t in complete}) == len(complete)  # none duplicated
    assert [t.state for t in trials].count(optuna.trial.TrialState.FAIL) == 1  # only the killed one
    assert erase.load_profile(out / "model.v1.yaml").calibration.iterations == 12


def test_fast_path_equals_generate_then_score(tiny_setup):
    from erase_calibrate.calibration import sources
    from erase_calibrate.calibration.base_answers import CalibrationItem
    from erase_calibrate.calibration.run import CalibrationConfig, template_profile
    from erase_calibrate.calibration.trials import TrialRunner
    from erase_calibrate.model_loading import load_model

    loaded = load_model(str(tiny_setup / "model"))
    items = load_items("chartqa", data_dir=tiny_setup / "data")
    calib = {"chartqa": []}
    for item in items:
        ans = greedy_answer(loaded.model, loaded.processor, item_inputs(loaded.processor, item), 4)
        calib["chartqa"].append(CalibrationItem(item, ans, sources.score(item, ans.text)))
    template = template_profile(loaded, CalibrationConfig(model="model", levels=2))
    runners = [
        TrialRunner(loaded, calib, template, sources.score, alpha=0.65, max_new_tokens=4, fast=fast) for fast in (True, False)
    ]
    for r in runners:
        r.prepare()
    try:
        rng = np.random.default_rng(0)
        seen_fast = 0
        for _ in range(6):
            th = (float(rng.uniform(0.5, 4.0)),)
            keeps = (float(rng.uniform(0.3, 0.9)), float(rng.uniform(0.1, 0.8)))
            fast, slow = (r.evaluate(th, keeps) for r in runners)
            assert fast.correct == slow.correct
            assert fast.accuracy == slow.accuracy and fast.objective == slow.objective
            assert slow.generated == len(items)
            seen_fast += len(items) - fast.generated
        assert seen_fast > 0  # the teacher-forced check really decided some items
    finally:
        for r in runners:
            r.close()


def test_warm_start_is_the_first_trial(tiny_setup, tmp_path):
    warm = erase.load_profile("qwen2.5-vl-7b").replace(name="warm")
    from erase.profile import Stage1

    warm = warm.replace(
        stage1=Stage1(thresholds=(2.5,), keep_ratios=(0.8, 0.4)),
        stage2=warm.stage2.__class__(early_layer=1, late_layer=16, early_levels=(2,), final_keep_ratio=0.15),
    )
    warm.save(tmp_path / "warm.yaml")
    out = tmp_path / "out"
    _calibrate(tiny_setup, out, "--iters", "2", "--levels", "2", "--warm-start", str(tmp_path / "warm.yaml"))
    first = min(_journal_study(out).trials, key=lambda t: t.number)
    assert first.user_attrs["thresholds"] == pytest.approx([2.5])
    assert first.user_attrs["keep_ratios"] == pytest.approx([0.8, 0.4])


def test_a_trial_created_by_a_process_killed_before_naming_it_is_an_orphan(tmp_path):
    """ask() makes the trial RUNNING a moment before its worker is recorded; a kill in between
    must not leave a trial that holds the study short of --iters forever."""
    from erase_calibrate.calibration.study import AskLock, fail_orphans, open_study

    study = open_study(None, "s", tmp_path, seed=0)
    study.ask()  # created, never named: its process died right there
    named = study.ask()
    named.set_user_attr("worker", "elsewhere:1")  # a live worker on another host
    running = lambda: [t.number for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))]  # noqa: E731
    assert fail_orphans(study) == 0 and running() == [0, 1]  # without the lock, nothing is sure
    lock = AskLock(tmp_path / "s.journal")
    assert fail_orphans(study, lock) == 1
    assert running() == [1]
