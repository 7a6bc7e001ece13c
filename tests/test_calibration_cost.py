"""Calibration v2's savings change no result: the memo, batches and stopping early, against full evaluation.

The study-level tests drive real Optuna studies (TPE, journal files) through `run_trials` with a
runner whose model is an oracle: whether an item is answered correctly is a fixed, deliberately
non-monotone function of (item, kept tokens), which is exactly what the memo assumes. The same
seeded study run with every saving and with none must agree trial by trial and pick the same
configuration. test_calibrate.py checks the same on a real (tiny) model for batches, the
teacher-forced check and the memo.
"""

from __future__ import annotations

import hashlib
import math
import types

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

import erase
from erase_calibrate.search.features import ItemFeatures, merge
from erase_calibrate.search.memo import Memo
from erase_calibrate.search.search_space import SearchSpace
from erase_calibrate.search.study import open_study, run_trials, select
from erase_calibrate.search.trials import TrialRunner, _Item

TOKENS = 256


def _oracle(i: int, kept: int) -> bool:
    """Correct from a per-item number of kept tokens on, with a few holes above it (not monotone)."""
    need = 40 + (i * 37) % 180
    flip = int(hashlib.sha1(f"{i}:{kept}".encode()).hexdigest(), 16) % 23 == 0
    return (kept >= need) != flip


class OracleRunner(TrialRunner):
    def __init__(self, n_items: int = 40, **kwargs):
        tokenizer = types.SimpleNamespace(pad_token_id=0, eos_token_id=1)
        loaded = types.SimpleNamespace(processor=types.SimpleNamespace(tokenizer=tokenizer), model=None)
        rng = np.random.default_rng(5)
        items = {"a": [], "b": []}
        for i in range(n_items):
            ci = types.SimpleNamespace(item=types.SimpleNamespace(id=f"x{i}"), answer=types.SimpleNamespace(token_ids=(5, 1)))
            items["a" if i % 3 else "b"].append(ci)
        template = erase.load_profile("qwen2.5-vl-7b")
        super().__init__(loaded, items, template, lambda item, text: 1.0, alpha=0.65, max_new_tokens=4, **kwargs)
        flat = [(bench, ci) for bench, cis in items.items() for ci in cis]
        self._items = [_Item(ci, bench, {}, float(rng.uniform(0.5, 5.0)), TOKENS, 300) for bench, ci in flat]
        self.calls = 0

    def _applied(self, profile, final, strategy):
        runner = self

        class Session:
            def __enter__(self):
                self.meter = types.SimpleNamespace(tokens=0)
                runner._meter = self.meter
                return None, self.meter

            def __exit__(self, *exc):
                return False

        return Session()

    def _decide(self, batch, sched, handle):
        self.calls += 1
        self._meter.tokens += len(batch) * max(self._length(i, sched[i][0]) for i in batch)
        return {i: _oracle(i, sched[i][0]) for i in batch}, 0


def _study(tmp_path, tag: str, runner: OracleRunner, rule: str, iters: int) -> optuna.Study:
    study = open_study(str(tmp_path / f"{tag}.journal"), tag, tmp_path, seed=11)
    space = SearchSpace(runner.global_entropies(), levels=4)
    run_trials(study, space, runner.evaluate, iters, rule=rule, memo=runner.memo)
    return study


@pytest.mark.parametrize("rule", ["accuracy", "objective"])
def test_stopping_early_and_the_memo_pick_what_full_evaluation_picks(tmp_path, rule):
    iters = 36
    full = OracleRunner(stop_early=False, memo=None, batch_size=1)
    fast = OracleRunner(stop_early=True, memo=Memo(), batch_size=4)
    a = sorted(_study(tmp_path, "full", full, rule, iters).trials, key=lambda t: t.number)
    study_b = _study(tmp_path, "fast", fast, rule, iters)
    b = sorted(study_b.trials, key=lambda t: t.number)
    assert len(a) == len(b) == iters
    for x, y in zip(a, b):
        assert x.params == y.params and x.state == y.state, x.number
        if x.state == TrialState.COMPLETE:
            assert (x.user_attrs["accuracy"], x.user_attrs["objective"]) == (y.user_attrs["accuracy"], y.user_attrs["objective"])
        else:
            assert x.state == TrialState.PRUNED and x.user_attrs["all_evaluated"]
            assert x.user_attrs["accuracy"] <= y.user_attrs.get("accuracy", y.user_attrs.get("accuracy_at_most"))
    study_a = optuna.load_study(study_name="full", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "full.journal"))))
    pick_a, pick_b = select(study_a, rule), select(study_b, rule)
    assert pick_a.number == pick_b.number and pick_a.user_attrs["keep_ratios"] == pick_b.user_attrs["keep_ratios"]
    # ... while doing much less
    ruled = [t for t in b if t.state == TrialState.PRUNED]
    assert ruled and any(not t.user_attrs["all_evaluated"] for t in ruled)
    decided_a = sum(t.user_attrs["evaluated"] for t in a)
    decided_b = sum(t.user_attrs["evaluated"] for t in b)
    assert decided_b < 0.75 * decided_a, (decided_b, decided_a)
    assert sum(t.user_attrs["memo_hits"] for t in b) > 0
    # a pick by the other rule cannot rank trials stopped under this one
    other = "objective" if rule == "accuracy" else "accuracy"
    with pytest.raises(erase.EraseError, match=f"ruled out under --select {rule}"):
        select(study_b, other)
    select(study_a, other)  # fully evaluated: fine


def test_the_memo_is_shared_through_the_storage(tmp_path):
    """A second worker (its own process memory, the same study) reuses the first one's results."""
    first = OracleRunner(stop_early=False, memo=Memo(), batch_size=8)
    study = _study(tmp_path, "shared", first, "accuracy", 3)
    second = OracleRunner(stop_early=False, memo=Memo(), batch_size=8)
    second.memo.refresh(study)
    assert second.memo.known == first.memo.known and len(first.memo.known) > 0
    t = study.trials[0]
    thresholds, keeps = t.user_attrs["thresholds"], t.user_attrs["keep_ratios"]
    again = second.evaluate(thresholds, keeps)
    assert again.memo_hits == 40 and again.evaluated == 0 and again.tokens == 0
    assert again.accuracy == t.user_attrs["accuracy"]


def test_a_trial_ruled_out_by_the_memo_alone_costs_nothing(tmp_path):
    runner = OracleRunner(stop_early=True, memo=Memo(), batch_size=4)
    space = SearchSpace(runner.global_entropies(), levels=4)
    params = {"q1": 0.3, "q2": 0.5, "q3": 0.7, "keep1": 0.6, "keep2": 0.15, "keep3": 0.12, "keep4": 0.1}
    th, keeps = space.decode(params)
    runner.evaluate(th, keeps)  # fills the memo

    class Rival:
        rule = "accuracy"

        def rival(self):
            return (1.0, 1.0)

        def remember(self, entries):
            pass

    r = runner.evaluate(th, keeps, Rival())
    assert r.ruled_out and r.tokens == 0 and r.evaluated == 0 and r.memo_hits == 40


# ----------------------------------------------------------------------------- vision features by identity
class _Vision(torch.nn.Module):
    """get_image_features in the shape of transformers' Qwen2.5-VL one: per-image pooled features."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def get_image_features(self, pixel_values, image_grid_thw=None, **kwargs):
        self.calls += 1
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        sizes = (image_grid_thw.prod(-1) // 4).tolist()
        pooled = pixel_values.reshape(-1, 4, pixel_values.shape[-1]).sum(1)
        return BaseModelOutputWithPooling(last_hidden_state=pixel_values * 2, pooler_output=torch.split(pooled, sizes))


def test_features_are_served_by_item_identity_never_by_a_pixel_sample():
    mm = _Vision()
    grid = torch.tensor([[1, 4, 4]])
    a = torch.arange(16 * 6, dtype=torch.float32).reshape(16, 6)
    b = a.clone()
    b[1, 0] += 1.0
    b[2, 0] -= 1.0  # same shape and the same sum of every 1009th value: the old cache's key
    assert float(a.flatten()[::1009].sum()) == float(b.flatten()[::1009].sum())
    cache = ItemFeatures(mm, {0: {"pixel_values": a, "image_grid_thw": grid}, 1: {"pixel_values": b, "image_grid_thw": grid}})
    try:
        with cache.serving([0, 1]):
            both = mm.get_image_features(torch.cat([a, b]), torch.cat([grid, grid]), return_dict=True)
        direct = _Vision().get_image_features(torch.cat([a, b]), torch.cat([grid, grid]))
        assert len(both.pooler_output) == 2
        for x, y in zip(both.pooler_output, direct.pooler_output):
            assert torch.equal(x, y)
        assert cache.hits == 1 and mm.calls == 2  # each item's features computed once
        with cache.serving([1, 0]):  # the order of the batch is the order of the pixels
            swapped = mm.get_image_features(torch.cat([b, a]), torch.cat([grid, grid]))
        assert torch.equal(swapped.pooler_output[0], direct.pooler_output[1]) and mm.calls == 2
        with cache.serving([0]):  # announced item 0, given other pixels: computed, not served
            other = mm.get_image_features(b, grid)
        assert torch.equal(other.pooler_output[0], direct.pooler_output[1])
        assert cache.misses == 1 and mm.calls == 3
        plain = mm.get_image_features(a, grid)  # nothing announced: computed
        assert cache.misses == 2 and torch.equal(plain.pooler_output[0], direct.pooler_output[0])
    finally:
        cache.close()
    assert "get_image_features" not in mm.__dict__


def test_merge_follows_per_image_and_per_layer_fields():
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    x, y = torch.ones(2, 3), torch.zeros(3, 3)
    out = merge([BaseModelOutputWithPooling(pooler_output=(x,)), BaseModelOutputWithPooling(pooler_output=(y,))])
    assert [t.shape[0] for t in out.pooler_output] == [2, 3]
    assert torch.equal(merge([x, y]), torch.cat([x, y]))


def test_memo_key_is_what_the_runtime_keeps():
    """The runner's (kept tokens) per item is the runtime's Stage 1 count, for every level."""
    runner = OracleRunner(stop_early=False, memo=None)
    profile = runner.profile_for((3.0, 2.0, 1.0), (0.8, 0.55, 0.3333, 0.1))
    for level, ratio in zip(range(1, 5), (0.8, 0.55, 0.3333, 0.1)):
        kept, layer = runner._schedule(profile, 0.1, level, TOKENS)
        assert kept == max(1, math.floor(TOKENS * ratio + 1e-9)) and layer == -1
