"""The calibration objective F = alpha * Accuracy + (1 - alpha) * sum_i c_i * p_i (pure)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def levels_of(global_entropies: Sequence[float], thresholds: Sequence[float]) -> np.ndarray:
    """Level (1 = most complex) of each image: 1 + number of thresholds it does not exceed."""
    h = np.asarray(global_entropies, dtype=np.float64)[:, None]
    return 1 + (h <= np.asarray(thresholds, dtype=np.float64)[None, :]).sum(axis=1)


def level_shares(global_entropies: Sequence[float], thresholds: Sequence[float]) -> np.ndarray:
    """c_i: the share of calibration images in each level."""
    levels = levels_of(global_entropies, thresholds)
    n = len(thresholds) + 1
    return np.bincount(levels - 1, minlength=n)[:n] / max(1, len(levels))


def normalised_accuracy(correct: Mapping[str, Sequence[bool]]) -> float:
    """Mean over benchmarks of the share of items still answered correctly.

    Calibration items are those the base model answers correctly, so the base scores 1.0.
    """
    per = [float(np.mean(v)) for v in correct.values() if len(v)]
    return float(np.mean(per)) if per else 0.0


def objective(alpha: float, accuracy: float, shares: Sequence[float], keep_ratios: Sequence[float]) -> float:
    pruning = 1.0 - np.asarray(keep_ratios, dtype=np.float64)
    return float(alpha * accuracy + (1.0 - alpha) * np.dot(np.asarray(shares, dtype=np.float64), pruning))


def mean_pruning(shares: Sequence[float], keep_ratios: Sequence[float]) -> float:
    return float(np.dot(np.asarray(shares), 1.0 - np.asarray(keep_ratios)))


RULES = ("accuracy", "objective")


def rank_key(rule: str, accuracy: float, objective_value: float) -> tuple[float, float]:
    """What the selection rule maximises, lexicographically: the paper's (accuracy, F), or (F, accuracy)."""
    if rule == "objective":
        return (float(objective_value), float(accuracy))
    return (float(accuracy), float(objective_value))
