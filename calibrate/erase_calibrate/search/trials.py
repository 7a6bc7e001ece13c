"""Evaluating one configuration of thresholds and keep ratios on the calibration items.

Work that no trial changes is done once: the processor's inputs, each image's
global entropy, and the vision tower's features (cached per item, served by
identity: features.py). Within a trial, three things keep the cost down
without changing any result:

- **The memo** (memo.py): with Stage 1 only, an item's result depends on how
  many of its tokens the trial keeps, nothing else; a result computed by any
  earlier trial, in any worker, is reused.
- **Batches**: the remaining items run `batch_size` at a time, left-padded,
  each keeping its own number of tokens. An item counts as correct iff the
  pruned model's greedy answer scores correct. For Stage-1-only trials one
  teacher-forced forward decides most items: if the pruned model reproduces
  the base answer token by token, that *is* its greedy output (and the base
  answer was correct). Items that fail the check, and items the memo says are
  likely to fail, are generated and scored.
- **Stopping early** (`stop_early`): the items' results so far bound the
  trial's accuracy and F from above (every item not yet decided counted as
  correct). Once that bound ranks below the best fully evaluated trial of the
  study under the selection rule (`Context.rival`), the trial cannot be
  selected and stops. Its fate is the same as with full evaluation: a trial is
  *ruled out* iff its true rank is below the rival's, whether that is found
  early or after every item (see study.run_trials for what Optuna is told).

Items likely to be wrong go first (the memo knows items that failed while
keeping more tokens), so a trial that will be ruled out usually is after its
first batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

import erase
from erase import EraseError, stage1
from erase.adapters import adapter_for
from erase.profile import Profile, Stage1

from ..tasks.answering import greedy_answers, item_inputs, reproduce_batch
from .base_answers import CORRECT, CalibrationItem
from .features import ItemFeatures
from .memo import Memo
from .meter import TokenMeter
from .objective import level_shares, levels_of, mean_pruning, normalised_accuracy, objective, rank_key


@dataclass
class TrialResult:
    thresholds: tuple[float, ...]
    keep_ratios: tuple[float, ...]
    accuracy: float  # exact when `complete`, else an upper bound
    objective: float  # likewise
    shares: tuple[float, ...]
    mean_pruning: float
    feasible: bool
    correct: dict[str, list[bool | None]] = field(default_factory=dict)  # None: not decided (stopped early)
    generated: int = 0  # items generated and scored
    evaluated: int = 0  # items decided by a forward pass in this trial
    memo_hits: int = 0  # items decided by the memo
    tokens: int = 0  # tokens the language model processed (batch x sequence length, summed)
    complete: bool = True  # every item decided
    ruled_out: bool = False  # ranks below `rival` under the selection rule: never selected
    rival: tuple[float, float] | None = None


class Context:
    """What a trial knows about its study. This one: nothing (no rival, nothing shared)."""

    rule: str = "accuracy"

    def rival(self) -> tuple[float, float] | None:
        """The rank key of the best fully evaluated trial, if any."""
        return None

    def remember(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """Share a batch's results (item, kept tokens, layer, correct)."""


@dataclass
class _Item:
    ci: CalibrationItem
    bench: str
    inputs: dict
    entropy: float
    tokens: int  # vision tokens of its image
    prompt: int  # prompt length before pruning


class TrialRunner:
    def __init__(
        self,
        loaded: Any,
        items: dict[str, list[CalibrationItem]],
        template: Profile,
        score: Callable[[Any, str], float],
        *,
        alpha: float,
        max_new_tokens: int,
        stage2_keep_ratio: float | None = None,
        fast: bool = True,
        batch_size: int = 1,
        memo: Memo | None = None,
        stop_early: bool = True,
        on_item: Callable[[], None] | None = None,
    ):
        self.loaded = loaded
        self.items = items
        self.template = template
        self.score = score
        self.alpha = alpha
        self.max_new_tokens = max_new_tokens
        self.stage2_keep_ratio = stage2_keep_ratio  # None: Stage 1 only, as the paper's trials
        self.fast = fast and stage2_keep_ratio is None
        self.batch_size = max(1, int(batch_size))
        self.memo = memo
        self.stop_early = stop_early
        self.on_item = on_item
        self._items: list[_Item] = []
        self._features: ItemFeatures | None = None
        tok = loaded.processor.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)

    # ---------------------------------------------------------------- setup
    def prepare(self, on_item: Callable[[], None] | None = None) -> None:
        """Processor inputs, global entropies and token counts, once per item."""
        model, processor = self.loaded.model, self.loaded.processor
        adapter = adapter_for(model)
        image_token = getattr(model.config, "image_token_id", None)
        rounding = self.template.stage1.entropy.grayscale_rounding  # as the profile will declare it
        self._items = []
        for bench, cis in self.items.items():
            for ci in cis:
                inputs = item_inputs(processor, ci.item, model.device)
                # the runtime's own Stage 1 reading (pixel_values in place), so the levels match it
                vision = {"pixel_values": inputs["pixel_values"], "image_grid_thw": inputs.get("image_grid_thw")}
                pe = adapter.patch_entropies(vision, rounding)[0]
                prompt = int(inputs["input_ids"].shape[1])
                tokens = int(pe.size)
                if image_token is not None:
                    tokens = int((inputs["input_ids"] == image_token).sum())
                self._items.append(_Item(ci, bench, inputs, stage1.global_entropy(pe), tokens, prompt))
                if on_item is not None:
                    on_item()
        self._features = ItemFeatures(model.model, {i: it.inputs for i, it in enumerate(self._items)})

    def close(self) -> None:
        if self._features is not None:
            self._features.close()
            self._features = None

    def item_inputs(self) -> list[dict]:
        """The processor's inputs of every item (after `prepare`)."""
        return [it.inputs for it in self._items]

    def all_items(self) -> list[CalibrationItem]:
        return [ci for items in self.items.values() for ci in items]

    def global_entropies(self) -> list[float]:
        return [it.entropy for it in self._items]

    @property
    def feature_cache(self) -> ItemFeatures | None:
        return self._features

    # ---------------------------------------------------------------- one trial
    def profile_for(self, thresholds: Sequence[float], keep_ratios: Sequence[float]) -> Profile:
        return self.template.replace(
            stage1=Stage1(thresholds=tuple(thresholds), keep_ratios=tuple(keep_ratios), entropy=self.template.stage1.entropy)
        )

    def _schedule(self, profile: Profile, final: float, level: int, total: int) -> tuple[int, int]:
        """(kept tokens, Stage 2 layer or -1): what Stage 1 and the level decide for an image, as the runtime does."""
        ratio = max(profile.stage1.keep_ratios[level - 1], final)
        kept = max(1, stage1.keep_count(total, ratio))
        if self.stage2_keep_ratio is None or kept <= stage1.final_count(total, final):
            return kept, -1
        return kept, profile.stage2_layer(level)

    def evaluate(
        self, thresholds: Sequence[float], keep_ratios: Sequence[float], context: Context | None = None
    ) -> TrialResult:
        ctx = context or Context()
        entropies = self.global_entropies()
        shares = level_shares(entropies, thresholds)
        levels = levels_of(entropies, thresholds)
        profile = self.profile_for(thresholds, keep_ratios)
        if self.stage2_keep_ratio is None:
            # Stage 1 only: a final ratio under every level's keeps the floor from binding.
            final, strategy = min(keep_ratios), erase.Strategy(stage2=False)
        else:
            final, strategy = self.stage2_keep_ratio, erase.Strategy()
        n = len(self._items)
        sched = [self._schedule(profile, final, int(levels[i]), it.tokens) for i, it in enumerate(self._items)]
        marks: list[bool | None] = [None] * n
        hits = 0
        if self.memo is not None:
            for i in range(n):
                got = self.memo.get((i, *sched[i]))
                if got is not None:
                    marks[i], hits = got, hits + 1

        def key(filled: list[bool]) -> tuple[float, float]:
            acc = normalised_accuracy(self._by_bench(filled))
            return rank_key(ctx.rule, acc, objective(self.alpha, acc, shares, keep_ratios))

        def bound() -> tuple[float, float]:
            acc = normalised_accuracy(self._by_bench([True if m is None else m for m in marks]))
            return acc, objective(self.alpha, acc, shares, keep_ratios)

        pending = self._order([i for i in range(n) if marks[i] is None], sched)
        generated = evaluated = 0
        stopped = False
        with self._applied(profile, final, strategy) as (handle, meter):
            while pending:
                rival = ctx.rival() if self.stop_early else None
                if rival is not None and rank_key(ctx.rule, *bound()) < rival:
                    stopped = True
                    break
                size = self._next_batch(pending, marks, rival, key)
                batch, pending = pending[:size], pending[size:]
                decided, gen = self._decide(batch, sched, handle)
                generated += gen
                evaluated += len(decided)
                entries = []
                for i, ok in decided.items():
                    marks[i] = ok
                    entries.append((i, *sched[i], ok))
                    if self.on_item is not None:
                        self.on_item()
                if self.memo is not None:
                    self.memo.add(entries)
                ctx.remember(entries)
                if self.memo is not None and pending:
                    pending = self._order(pending, sched)  # what this batch taught reorders the rest
        acc, f = bound()
        rival = ctx.rival()
        complete = all(m is not None for m in marks)
        ruled_out = stopped or (rival is not None and rank_key(ctx.rule, acc, f) < rival)
        return TrialResult(
            thresholds=tuple(thresholds),
            keep_ratios=tuple(keep_ratios),
            accuracy=acc,
            objective=f,
            shares=tuple(float(x) for x in shares),
            mean_pruning=mean_pruning(shares, keep_ratios),
            feasible=bool(np.all(shares > 0)),
            correct=self._by_bench(marks),
            generated=generated,
            evaluated=evaluated,
            memo_hits=hits,
            tokens=meter.tokens,
            complete=complete,
            ruled_out=ruled_out,
            rival=rival,
        )

    # ---------------------------------------------------------------- helpers
    @contextlib.contextmanager
    def _applied(self, profile: Profile, final: float, strategy: erase.Strategy) -> Iterator[tuple[Any, TokenMeter]]:
        """The model with the trial's profile applied, and a meter of its language model's tokens."""
        model = self.loaded.model
        meter = TokenMeter(model)
        try:
            with erase.apply(model, profile, final_keep_ratio=final, strategy=strategy) as handle:
                yield handle, meter
        finally:
            meter.close()

    def _by_bench(self, marks: Sequence[bool | None]) -> dict[str, list]:
        out: dict[str, list] = {bench: [] for bench in self.items}
        for it, m in zip(self._items, marks):
            out[it.bench].append(m)
        return out

    def _length(self, i: int, kept: int) -> int:
        it = self._items[i]
        return it.prompt - it.tokens + kept + len(it.ci.answer.token_ids)

    def _risk(self, i: int, kept: int, layer: int) -> float:
        """How likely the item is wrong at this many kept tokens, from the memo (lower: likelier).

        0: it failed while keeping as many tokens or more; 3: it succeeded with as few or fewer;
        in between by the nearest known result (1: a failure, 2: a success; 1.5: nothing known).
        Only an order: every item is still decided by the model or by the memo's exact entry.
        """
        if self.memo is None:
            return 1.5
        seen = [(k, ok) for k, lay, ok in self.memo.item_entries(i) if lay == layer]
        if any(not ok and k >= kept for k, ok in seen):
            return 0.0
        if any(ok and k <= kept for k, ok in seen):
            return 3.0
        if not seen:
            return 1.5
        k, ok = min(seen, key=lambda e: abs(e[0] - kept))
        return 2.0 if ok else 1.0

    def _order(self, pending: list[int], sched: list[tuple[int, int]]) -> list[int]:
        if not self.stop_early:
            return sorted(pending, key=lambda i: self._length(i, sched[i][0]))  # least padding
        return sorted(
            pending,
            key=lambda i: (self._risk(i, *sched[i]), sched[i][0] / max(1, self._items[i].tokens), self._length(i, sched[i][0])),
        )

    def _next_batch(self, pending: list[int], marks: list[bool | None], rival: tuple[float, float] | None, key: Callable) -> int:
        """How many of the pending items to run next: `batch_size`, or fewer when fewer wrong answers
        (the likeliest first) would already rule the trial out: they are all it takes to stop."""
        if not self.stop_early or rival is None:
            return self.batch_size
        trial = [True if m is None else m for m in marks]
        for j, i in enumerate(pending[: self.batch_size], start=1):
            trial[i] = False
            if key(trial) < rival:
                return j
        return self.batch_size

    def _decide(self, batch: list[int], sched: list[tuple[int, int]], handle: Any) -> tuple[dict[int, bool], int]:
        """Correct or not, for each item of a batch; and how many were generated."""
        decided: dict[int, bool] = {}
        likely_wrong = [i for i in batch if self.fast and self._risk(i, *sched[i]) <= 1.0]
        check = [i for i in batch if self.fast and i not in likely_wrong]
        generate = list(likely_wrong) if self.fast else list(batch)
        if check:
            check.sort(key=lambda i: self._length(i, sched[i][0]))
            with self._features.serving(check):
                ok = reproduce_batch(
                    self.loaded.model, [self._items[i].inputs for i in check],
                    [self._items[i].ci.answer.token_ids for i in check], self.pad_id,
                )
            self._verify(handle, check, sched)
            for i, o in zip(check, ok):
                if o:
                    decided[i] = True
                else:
                    generate.append(i)
        if generate:
            generate.sort(key=lambda i: self._length(i, sched[i][0]) - len(self._items[i].ci.answer.token_ids))
            with self._features.serving(generate):
                answers = greedy_answers(
                    self.loaded.model, self.loaded.processor, [self._items[i].inputs for i in generate], self.max_new_tokens
                )
            self._verify(handle, generate, sched)
            for i, a in zip(generate, answers):
                decided[i] = float(self.score(self._items[i].ci.item, a.text)) >= CORRECT
        return decided, len(generate)

    def _verify(self, handle: Any, batch: list[int], sched: list[tuple[int, int]]) -> None:
        """The runtime kept exactly the tokens the memo key says (else the memo would be keyed wrongly)."""
        stats = handle.stats
        if len(stats) != len(batch):
            raise EraseError(f"the runtime reported {len(stats)} samples for a batch of {len(batch)}")
        for i, per in zip(batch, stats):
            kept, layer = sched[i]
            got_layer = -1 if per[0].layer is None or self.stage2_keep_ratio is None else per[0].layer
            if per[0].tokens_after_stage1 != kept or got_layer != layer:
                raise EraseError(
                    f"the runtime kept {per[0].tokens_after_stage1} tokens (Stage 2 layer {got_layer}) of calibration item "
                    f"{self._items[i].ci.item.id}, the calibrator expected {kept} (layer {layer})"
                )
