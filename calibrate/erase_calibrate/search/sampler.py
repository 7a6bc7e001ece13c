"""TPE whose random draws depend on (seed, trial number) only.

A sampler seeded once per process repeats its random sequence in every worker
that starts with the same seed: two workers on a fresh study would propose the
same first points. Seeding per trial number instead gives every trial its own
stream, whichever worker runs it and whenever, so workers never duplicate each
other's draws, a resumed run never replays an earlier one, and a study run by
one worker or by several samples its random start-up trials identically.

TPE keeps no state between trials besides its random generator (it reads the
history from the study each time), so a fresh `TPESampler` per trial is the
same algorithm. Constant liar makes each worker treat the trials other workers
are still running as bad, steering it elsewhere. Infeasible trials reach TPE
through `Trial.set_constraint` (stored with the trial), not a sampler callback.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState


def trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededTPE(BaseSampler):
    def __init__(self, seed: int):
        self.seed = seed
        self._number: int | None = None
        self._tpe = self._make(0)

    def _make(self, number: int) -> TPESampler:
        return TPESampler(seed=trial_seed(self.seed, number), constant_liar=True)

    def _for(self, trial: FrozenTrial) -> TPESampler:
        if trial.number != self._number:
            self._number, self._tpe = trial.number, self._make(trial.number)
        return self._tpe

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._for(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:  # nothing to reseed: every trial is seeded from its number
        pass
