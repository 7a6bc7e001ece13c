"""The Optuna study: storage, resumption, the trial loop and the pick.

The default storage is a journal file next to the output, so rerunning the same
command continues the study. A process killed mid-trial leaves that trial
RUNNING; the next run marks it failed if the process that owned it is gone,
and runs trials until the study holds `iters` completed ones.

Several workers may share one study (a journal file on one machine, or a
database). `iters` counts the study's trials, not a worker's: a trial is only
run when fewer than `iters` trials numbered before it are complete or running,
so workers asking at the same moment never overshoot. Trial numbers are
assigned in creation order by both storages (RDB locks the study row, the
journal orders its log), which is what makes that count exact.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from erase import EraseError

from .sampler import TrialSeededTPE
from .search_space import SearchSpace
from .trials import TrialResult

WORKER = f"{socket.gethostname()}:{os.getpid()}"


def journal_path(storage: str | None, study_name: str, out_dir: Path) -> Path | None:
    """The journal file a storage argument means (none: OUT/STUDY.journal), or None for a URL."""
    if storage is None:
        return Path(out_dir) / f"{study_name}.journal"
    return None if "://" in storage else Path(storage)


def open_storage(storage: str | None, study_name: str, out_dir: Path, *, create: bool = True) -> Any:
    path = journal_path(storage, study_name, out_dir)
    if path is not None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        if not create and not path.is_file():
            raise EraseError(f"{path}: no such study journal")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise EraseError(f"{path}: cannot open the study journal: {exc.strerror or exc}") from None
    # Workers starting together race to create the schema on an empty database; a retry sees it made.
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(storage)
        except Exception as exc:  # noqa: BLE001 - storage URLs fail in many ways; one line for the user
            if attempt == 4 or not _transient(exc):
                raise EraseError(f"cannot open storage {redact(storage)}: {str(exc).strip().splitlines()[0]}") from None
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def _transient(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("already exists", "duplicate key", "deadlock", "could not serialize"))


def redact(url: str) -> str:
    """A storage URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


def open_study(
    storage: str | None, study_name: str, out_dir: Path, seed: int, *, create: bool = True
) -> optuna.Study:
    """Create or load the study; a plain path (or none) means a journal file.

    With `create=False` the study must exist (finalize reads a study, never starts one).
    """
    storage_obj = open_storage(storage, study_name, out_dir, create=create)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    where = redact(storage) if storage else str(journal_path(None, study_name, out_dir))
    try:
        if create:
            return optuna.create_study(
                study_name=study_name, storage=storage_obj, sampler=TrialSeededTPE(seed), direction="maximize",
                load_if_exists=True,
            )
        return optuna.load_study(study_name=study_name, storage=storage_obj, sampler=TrialSeededTPE(seed))
    except KeyError:
        raise EraseError(f"no study {study_name!r} in {where}") from None
    except Exception as exc:  # noqa: BLE001 - storage URLs fail in many ways; one line for the user
        raise EraseError(f"cannot open study {study_name!r} in {where}: {str(exc).strip().splitlines()[0]}") from None


class AskLock:
    """Serialises "create a trial, then name its worker" among the processes sharing a journal file.

    A trial exists (RUNNING) a moment before its `worker` attribute does; a process killed in
    between leaves a trial nobody can attribute. Holding this lock (an flock, which the kernel
    drops when its holder dies) while asking, and while looking for orphans, means that an
    unnamed RUNNING trial seen under the lock belongs to a dead process. Journal files only:
    database workers on other hosts cannot share it (their unnamed trials are left alone).
    """

    def __init__(self, journal: Path | None):
        self.path = None if journal is None else Path(f"{journal}.ask.lock")

    @contextlib.contextmanager
    def held(self):
        if self.path is None:
            yield False
            return
        import fcntl

        with open(self.path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def fail_orphans(study: optuna.Study, lock: AskLock | None = None) -> int:
    """Mark RUNNING trials of dead processes on this host as FAIL (they were killed mid-trial)."""
    with (lock or AskLock(None)).held() as exclusive:
        return _fail_orphans(study, unnamed_are_dead=exclusive)


def _fail_orphans(study: optuna.Study, unnamed_are_dead: bool) -> int:
    host = socket.gethostname()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker", "")
        w_host, _, pid = worker.rpartition(":")
        dead = (not worker and unnamed_are_dead) or (w_host == host and pid.isdigit() and not _alive(int(pid)))
        if dead:
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)  # no public per-trial API
            n += 1
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def count(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


@dataclass
class WorkerRun:
    completed: int = 0  # trials this worker completed
    surplus: bool = False  # stopped because other workers had already taken the last trials


def run_trials(
    study: optuna.Study,
    space: SearchSpace,
    evaluate: Callable[[tuple, tuple], TrialResult],
    iters: int,
    on_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None,
    lock: AskLock | None = None,
) -> WorkerRun:
    """Run trials until the study holds `iters` completed ones (counting other workers' too)."""
    run = WorkerRun()
    while count(study, TrialState.COMPLETE) + count(study, TrialState.RUNNING) < iters:
        with (lock or AskLock(None)).held():
            trial = study.ask()
            trial.set_user_attr("worker", WORKER)
        if trials_before(study, trial.number) >= iters:
            # Another worker asked at the same moment and took the last slot: this trial is one too many.
            # FAIL keeps it out of TPE's model and out of the pick; it was never evaluated.
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            run.surplus = True
            break
        thresholds, keeps = space.suggest(trial)
        result = evaluate(thresholds, keeps)
        record(trial, result)
        frozen = study.tell(trial, result.objective)
        run.completed += 1
        if on_trial is not None:
            on_trial(frozen)
    return run


def trials_before(study: optuna.Study, number: int) -> int:
    """Complete or running trials numbered below `number`: the ones that count before it."""
    live = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    return sum(1 for t in live if t.number < number)


def record(trial: optuna.trial.Trial, r: TrialResult) -> None:
    trial.set_user_attr("accuracy", r.accuracy)
    trial.set_user_attr("objective", r.objective)
    trial.set_user_attr("mean_pruning", r.mean_pruning)
    trial.set_user_attr("feasible", r.feasible)
    empty = int(sum(1 for c in r.shares if c == 0))
    trial.set_user_attr("empty_levels", empty)
    trial.set_constraint("empty_levels", float(empty))  # > 0: infeasible; TPE steers away from it
    trial.set_user_attr("generated", r.generated)
    trial.set_user_attr("thresholds", list(r.thresholds))
    trial.set_user_attr("keep_ratios", list(r.keep_ratios))
    for i, c in enumerate(r.shares, start=1):
        trial.set_user_attr(f"c{i}", c)


def select(study: optuna.Study, rule: str) -> optuna.trial.FrozenTrial:
    """The paper's rule: highest accuracy among feasible trials, ties to higher F; or best F."""
    done = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.user_attrs.get("feasible")
    ]
    if not done:
        raise EraseError("no feasible trial: every completed trial left a complexity level empty; run more trials")
    if rule == "objective":
        return max(done, key=lambda t: (t.value, t.user_attrs["accuracy"], -t.number))
    return max(done, key=lambda t: (t.user_attrs["accuracy"], t.value, -t.number))
