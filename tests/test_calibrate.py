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
from erase_calibrate.tasks.answering import greedy_answer, item_inputs
from erase_calibrate.tasks.benchmarks import load_items
from erase_calibrate.search.objective import level_shares, levels_of, normalised_accuracy, objective
from erase_calibrate.search.search_space import SearchSpace
from erase.testing import simple_image
from tiny_qwen import build_processor, build_tiny_qwen25vl, build_tokenizer, make_image

ITEMS = 6
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)  # both count towards --iters


# ----------------------------------------------------------------------------- pure parts
def test_every_draw_leaves_every_level_non_empty():
    rng = np.random.default_rng(0)
    entropies = list(rng.uniform(0.5, 5.0, 40)) + [2.0, 2.0, 2.0]  # ties count once
    for levels in (2, 3, 4, 6):
        space = SearchSpace(entropies, levels=levels)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=levels))
        for _ in range(200):
            t = study.ask()
            thresholds, keeps = space.suggest(t)
            assert all(a > b for a, b in zip(thresholds, thresholds[1:]))
            assert 0.6 <= keeps[0] <= 0.9 and all(0.1 <= k <= 0.85 for k in keeps[1:])
            assert (level_shares(entropies, thresholds) > 0).all()  # feasible by construction
            study.tell(t, 0.0)
    # the extremes of the parameters are feasible too
    space = SearchSpace(entropies, levels=4)
    for q in (0.0, 1.0):
        th, _ = space.decode({"q1": q, "q2": q, "q3": q, **{f"keep{i}": 0.5 for i in range(1, 5)}})
        assert (level_shares(entropies, th) > 0).all()


def test_too_few_distinct_complexities_is_one_line():
    with pytest.raises(erase.EraseError, match="3 distinct complexities"):
        SearchSpace([1.0, 1.0, 2.0, 3.0], levels=4)


def test_warm_start_maps_a_profile_into_the_space():
    entropies = [0.5, 1.0, 1.2, 1.3, 1.5, 1.8, 2.5, 3.0]
    space = SearchSpace(entropies, levels=4)
    th, keeps = (1.69, 1.35, 1.17), (0.8268, 0.7514, 0.4947, 0.4034)
    dec = space.decode(space.encode(th, keeps))
    assert levels_of(entropies, dec[0]).tolist() == levels_of(entropies, th).tolist()  # the same partition
    assert dec[1] == pytest.approx(keeps, abs=0.005)  # on the 0.01 grid
    # a profile that leaves levels empty here maps to the nearest partition that does not
    dec, _ = space.decode(space.encode((10.0, 9.0, 8.0), keeps))
    assert (level_shares(entropies, dec) > 0).all()
    assert levels_of(entropies, dec).tolist().count(4) == len(entropies) - 3


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
    study = _journal_study(out)
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 4 and len(study.trials) == 4  # every trial counts: none wasted on an empty level
    done = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    for t in finished:
        ua = t.user_attrs
        assert {"mean_pruning", "c1", "c2", "feasible", "tokens", "evaluated", "memo_hits"} <= set(ua)
        assert ua["feasible"] and ua["c1"] > 0 and ua["c2"] > 0
    for t in done:
        ua = t.user_attrs
        assert ua["objective"] == pytest.approx(
            0.65 * ua["accuracy"] + 0.35 * sum(ua[f"c{i + 1}"] * (1 - k) for i, k in enumerate(ua["keep_ratios"]))
        )
    for t in finished:
        if t.state == optuna.trial.TrialState.PRUNED:  # ruled out: below a complete trial under the rule
            bound = t.user_attrs.get("accuracy", t.user_attrs.get("accuracy_at_most"))
            assert (bound, t.user_attrs.get("objective", t.user_attrs.get("objective_at_most"))) < tuple(t.user_attrs["rival"])
    # the profile is the selected trial: highest accuracy among complete ones, ties to F
    best = max(done, key=lambda t: (t.user_attrs["accuracy"], t.value))
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
    study = _journal_study(out)
    assert len([t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]) == 5


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
            try:
                states = [t.state for t in _journal_study(out).trials]
            except KeyError:  # the journal file exists a moment before its study record does
                continue
            if sum(states.count(s) for s in FINISHED) >= 3 and optuna.trial.TrialState.RUNNING in states:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the calibrator finished before it could be killed mid-trial"
    before = {t.number: t.params for t in _journal_study(out).trials if t.state in FINISHED}
    assert not (out / "model.v1.yaml").exists()  # nothing half-written

    _calibrate(tiny_setup, out, *args)
    trials = _journal_study(out).trials
    complete = [t for t in trials if t.state in FINISHED]
    assert len(complete) == 12, [(t.number, t.state.name, t.user_attrs.get("worker")) for t in trials]
    assert {t.number: t.params for t in complete if t.number in before} == before  # none lost
    assert len({tuple(sorted(t.params.items())) for t in complete}) == len(complete)  # none duplicated
    assert [t.state for t in trials].count(optuna.trial.TrialState.FAIL) == 1  # only the killed one
    assert erase.load_profile(out / "model.v1.yaml").calibration.iterations == 12


def test_fast_path_equals_generate_then_score(tiny_setup):
    """The calibrator's path (teacher-forced check, left-padded batches whose samples keep different
    numbers of tokens, batched generation where the check fails, the memo) decides every item as
    generating and scoring it alone does."""
    from erase_calibrate import tasks as sources
    from erase_calibrate.search.base_answers import CalibrationItem
    from erase_calibrate.search.memo import Memo
    from erase_calibrate.search.run import CalibrationConfig, template_profile
    from erase_calibrate.search.trials import TrialRunner
    from erase_calibrate.models import load as load_model

    loaded = load_model(str(tiny_setup / "model"))
    items = load_items("chartqa", data_dir=tiny_setup / "data")
    calib = {"chartqa": []}
    for item in items:
        ans = greedy_answer(loaded.model, loaded.processor, item_inputs(loaded.processor, item), 4)
        calib["chartqa"].append(CalibrationItem(item, ans, sources.score(item, ans.text)))
    template = template_profile(loaded, CalibrationConfig(model="model", levels=2))
    fast = TrialRunner(loaded, calib, template, sources.score, alpha=0.65, max_new_tokens=4, batch_size=4, memo=Memo())
    slow = TrialRunner(loaded, calib, template, sources.score, alpha=0.65, max_new_tokens=4, fast=False, batch_size=1)
    for r in (fast, slow):
        r.prepare()
    try:
        rng = np.random.default_rng(0)
        # a random tiny model loses its answers to most pruning: half the configurations keep nearly everything
        configs = [((float(rng.uniform(0.5, 4.0)),), (float(rng.uniform(lo, 1.0)), float(rng.uniform(lo, 1.0))))
                   for lo in (0.1, 0.9, 0.3, 0.9, 0.5, 0.95)]
        checked = hits = 0
        for th, keeps in configs + configs[:2]:  # the repeats come from the memo
            a, b = fast.evaluate(th, keeps), slow.evaluate(th, keeps)
            assert a.correct == b.correct
            assert a.accuracy == b.accuracy and a.objective == b.objective and a.complete and b.complete
            assert b.generated == b.evaluated == len(items) and b.memo_hits == 0
            checked += a.evaluated - a.generated
            hits += a.memo_hits
            assert b.tokens > 0 and (a.tokens > 0) == (a.evaluated > 0)
        assert checked > 0  # the teacher-forced check really decided some items
        assert hits >= 2 * len(items)  # the repeated configurations came from the memo
        assert fast.feature_cache.hits > 0  # features served by identity
    finally:
        for r in (fast, slow):
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
    study = _journal_study(out)
    first = min(study.trials, key=lambda t: t.number)
    assert first.user_attrs["keep_ratios"] == pytest.approx([0.8, 0.4])
    # the warm start's thresholds, mapped into the space: the same partition of the calibration images
    # (or the nearest one that leaves no level empty), its thresholds the midpoints of the gaps
    from erase_calibrate.search import record

    template = record.load_setup(study).template_profile()
    h = [erase.stage1.score_image(it.image, template).global_entropy for it in load_items("chartqa", data_dir=tiny_setup / "data")]
    want = levels_of(h, (2.5,))
    if len(set(want.tolist())) == 2:
        assert levels_of(h, first.user_attrs["thresholds"]).tolist() == want.tolist()
    assert len(set(levels_of(h, first.user_attrs["thresholds"]).tolist())) == 2


def test_a_trial_created_by_a_process_killed_before_naming_it_is_an_orphan(tmp_path):
    """ask() makes the trial RUNNING a moment before its worker is recorded; a kill in between
    must not leave a trial that holds the study short of --iters forever."""
    from erase_calibrate.search.study import AskLock, fail_orphans, open_study

    study = open_study(None, "s", tmp_path, seed=0)
    study.ask()  # created, never named: its process died right there
    named = study.ask()
    named.set_user_attr("worker", "elsewhere:1")  # a live worker on another host
    running = lambda: [t.number for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))]  # noqa: E731
    assert fail_orphans(study) == 0 and running() == [0, 1]  # without the lock, nothing is sure
    lock = AskLock(tmp_path / "s.journal")
    assert fail_orphans(study, lock) == 1
    assert running() == [1]
