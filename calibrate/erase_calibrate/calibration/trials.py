"""Evaluating one configuration of thresholds and keep ratios on the calibration items.

Work that no trial changes is done once: the processor's inputs, the vision
tower's features (served from a cache under the runtime's hooks) and each
image's global entropy. An item counts as correct iff the pruned model's
greedy answer scores correct. For Stage-1-only trials that is decided first
by one teacher-forced forward: if the pruned model reproduces the base answer
token by token, that *is* its greedy output (and the base answer was correct).
Only when it does not, the item is generated and scored.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

import erase
from erase import stage1
from erase.adapters import adapter_for
from erase.profile import Profile, Stage1

from ..answering import greedy_answer, item_inputs, reproduces
from .base_answers import CORRECT, CalibrationItem
from .objective import level_shares, mean_pruning, normalised_accuracy, objective


@dataclass
class TrialResult:
    thresholds: tuple[float, ...]
    keep_ratios: tuple[float, ...]
    accuracy: float
    objective: float
    shares: tuple[float, ...]
    mean_pruning: float
    feasible: bool
    correct: dict[str, list[bool]] = field(default_factory=dict)
    generated: int = 0  # items that needed generation (the fast check failed)


class FeatureCache:
    """Serve the vision tower's output for inputs seen before.

    Keyed by a cheap fingerprint of the pixels: generate() may hand over a copy of the tensor.
    """

    def __init__(self, multimodal: Any):
        self.mm = multimodal
        self.store: dict[tuple, Any] = {}
        self.original = multimodal.get_image_features

        @functools.wraps(self.original)
        def cached(pixel_values, image_grid_thw=None, **kwargs):
            grid = None if image_grid_thw is None else tuple(map(tuple, image_grid_thw.tolist()))
            key = (tuple(pixel_values.shape), float(pixel_values.flatten()[::1009].double().sum()), grid)
            if key not in self.store:
                self.store[key] = self.original(pixel_values, image_grid_thw, **kwargs)
            return copy.copy(self.store[key])

        multimodal.get_image_features = cached

    def close(self) -> None:
        self.mm.__dict__.pop("get_image_features", None)
        self.store.clear()


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
        self.on_item = on_item
        self._inputs: dict[int, dict] = {}
        self._entropy: dict[int, float] = {}
        self._features: FeatureCache | None = None

    # ---------------------------------------------------------------- setup
    def prepare(self, on_item: Callable[[], None] | None = None) -> None:
        """Processor inputs and global entropies, once per item."""
        model, processor = self.loaded.model, self.loaded.processor
        adapter = adapter_for(model)
        for ci in self.all_items():
            inputs = item_inputs(processor, ci.item, model.device)
            pixels, grids = adapter.images_from_vision(
                {"pixel_values": inputs["pixel_values"], "image_grid_thw": inputs.get("image_grid_thw")}
            )
            pe = stage1.patch_entropy_rgb(pixels[0], pixels[0].shape[0] // grids[0][0])
            self._inputs[id(ci)] = inputs
            self._entropy[id(ci)] = stage1.global_entropy(pe)
            if on_item is not None:
                on_item()
        self._features = FeatureCache(model.model)

    def close(self) -> None:
        if self._features is not None:
            self._features.close()
            self._features = None

    def item_inputs(self) -> list[dict]:
        """The processor's inputs of every item (after `prepare`)."""
        return [self._inputs[id(ci)] for ci in self.all_items()]

    def all_items(self) -> list[CalibrationItem]:
        return [ci for items in self.items.values() for ci in items]

    def global_entropies(self) -> list[float]:
        return [self._entropy[id(ci)] for ci in self.all_items()]

    # ---------------------------------------------------------------- one trial
    def profile_for(self, thresholds: Sequence[float], keep_ratios: Sequence[float]) -> Profile:
        return self.template.replace(
            stage1=Stage1(thresholds=tuple(thresholds), keep_ratios=tuple(keep_ratios), entropy=self.template.stage1.entropy)
        )

    def evaluate(self, thresholds: Sequence[float], keep_ratios: Sequence[float]) -> TrialResult:
        shares = level_shares(self.global_entropies(), thresholds)
        profile = self.profile_for(thresholds, keep_ratios)
        if self.stage2_keep_ratio is None:
            # Stage 1 only: a final ratio under every level's keeps the floor from binding.
            final, strategy = min(keep_ratios), erase.Strategy(stage2=False)
        else:
            final, strategy = self.stage2_keep_ratio, erase.Strategy()
        correct: dict[str, list[bool]] = {}
        generated = 0
        model = self.loaded.model
        with erase.apply(model, profile, final_keep_ratio=final, strategy=strategy):
            for bench, items in self.items.items():
                marks = []
                for ci in items:
                    inputs = self._inputs[id(ci)]
                    if self.fast and reproduces(model, inputs, ci.answer.token_ids):
                        ok = True
                    else:
                        generated += 1
                        answer = greedy_answer(model, self.loaded.processor, inputs, self.max_new_tokens)
                        ok = float(self.score(ci.item, answer.text)) >= CORRECT
                    marks.append(ok)
                    if self.on_item is not None:
                        self.on_item()
                correct[bench] = marks
        accuracy = normalised_accuracy(correct)
        return TrialResult(
            thresholds=tuple(thresholds),
            keep_ratios=tuple(keep_ratios),
            accuracy=accuracy,
            objective=objective(self.alpha, accuracy, shares, keep_ratios),
            shares=tuple(float(x) for x in shares),
            mean_pruning=mean_pruning(shares, keep_ratios),
            feasible=bool(np.all(shares > 0)),
            correct=correct,
            generated=generated,
        )
