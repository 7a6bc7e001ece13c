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
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from erase import EraseError
from erase.fileio import check_writable
from erase.limits import open_regular

from ..interrupts import deferred

from .sampler import TrialSeededTPE
from .search_space import SearchSpace
from .trials import TrialResult

WORKER = f"{socket.gethostname()}:{os.getpid()}"


def journal_path(storage: str | None, study_name: str, out_dir: Path) -> Path | None:
    """The journal file a storage argument means (none: OUT/STUDY.journal), or None for a URL."""
    if storage is None:
        return Path(out_dir) / f"{study_name}.journal"
    return None if "://" in storage else Path(storage)


STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_study_name(name: str) -> str:
    """A study name is part of file names (OUT/NAME.journal): letters, digits, '.', '_', '-'; no path separators."""
    if not isinstance(name, str) or not STUDY_NAME.match(name):
        raise EraseError(
            f"--study-name {name!r:.80}: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(it names files in the output folder)"
        )
    return name


def check_storage(storage: str | None) -> None:
    """Refuse, before anything is created, a --storage that cannot be a journal file or a database URL."""
    if storage is None:
        return
    if not storage.strip() or "\0" in storage:
        raise EraseError(f"--storage {storage!r}: expected a journal file path or a database URL")
    if "://" in storage:
        return  # the database reports its own faults, when the study opens
    path = Path(storage)
    if path.exists():
        if not path.is_file():
            raise EraseError(f"--storage {storage}: not a regular file (a journal file path or a database URL)")
        open_storage(storage, "", path.parent, create=False)  # replays it: a damaged journal is refused now
        return
    check_writable(path, "--storage")


def _check_journal_head(path: Path) -> None:
    """A journal is JSON lines; refuse another file before Optuna reads it (a huge single line) or appends to it."""
    try:
        with open_regular(path, "study journal", EraseError) as fh:
            head = fh.read(1)
    except OSError as exc:
        raise EraseError(f"{path}: cannot read the study journal: {exc.strerror or exc}") from None
    if head and head != b"{":
        raise EraseError(f"{path}: not an Optuna journal file (it does not start with a JSON log line)")


class _JournalFile(JournalFileBackend):
    """Optuna's journal file backend, whose appends a Ctrl-C or SIGTERM never cuts in half."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with deferred():
            super().append_logs(logs)


def open_storage(storage: str | None, study_name: str, out_dir: Path, *, create: bool = True) -> Any:
    path = journal_path(storage, study_name, out_dir)
    if path is not None:
        from optuna.storages import JournalStorage

        if not create and not path.is_file():
            raise EraseError(f"{path}: no such study journal")
        if path.exists():
            _check_journal_head(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(_JournalFile(str(path)))
        except OSError as exc:
            raise EraseError(f"{path}: cannot open the study journal: {exc.strerror or exc}") from None
        except Exception as exc:  # noqa: BLE001 - a damaged journal fails to replay in many ways
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EraseError(f"{path}: not a readable study journal ({type(exc).__name__}: {first})") from None
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


class FreshStart:
    """Undo what a failed start of a new study created: a refused run leaves nothing behind.

    Entered before the study is opened; `study` is set once it is. When the block fails
    (not interrupted: an interrupted run keeps its state to continue from) and the study
    holds no trial, what did not exist before is removed: the journal and its lock file,
    the base-answer cache, the output folder (if empty), a new database study.
    """

    def __init__(self, storage: str | None, study_name: str, out_dir: Path):
        self.storage, self.study_name = storage, study_name
        self.study: optuna.Study | None = None
        out = Path(out_dir).absolute()
        self.journal = journal_path(storage, study_name, out)
        paths = [out / "base-answers"]
        if self.journal is not None:
            paths += [self.journal, Path(f"{self.journal}.ask.lock")]
        elif storage is not None and storage.startswith("sqlite:///"):
            paths.append(Path(storage[len("sqlite:///"):]).absolute())
        self.new_paths = [p for p in paths if not p.exists()]
        self.new_dirs = []
        for folder in {out, *(p.parent for p in paths)}:
            while not folder.exists():
                self.new_dirs.append(folder)
                folder = folder.parent
        self.new_study = self.journal is None and not self._db_has_study()

    def _db_has_study(self) -> bool:
        try:
            optuna.load_study(study_name=self.study_name, storage=self.storage)
            return True
        except Exception:  # noqa: BLE001 - no such study, or no such database yet
            return False

    def __enter__(self) -> "FreshStart":
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if kind is None or issubclass(kind, KeyboardInterrupt):
            return
        with deferred():
            self.undo()

    def undo(self) -> None:
        if self.study is not None:
            try:
                if self.study.get_trials(deepcopy=False):
                    return  # not a fresh study any more: keep everything
                if self.new_study:
                    optuna.delete_study(study_name=self.study_name, storage=self.storage)
            except Exception:  # noqa: BLE001 - cannot tell: keep everything
                return
        for path in self.new_paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        for folder in sorted(self.new_dirs, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty


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
        trial = None
        try:
            with (lock or AskLock(None)).held(), deferred():  # a signal never separates a trial from its worker's name
                trial = study.ask()
                trial.set_user_attr("worker", WORKER)
            if trials_before(study, trial.number) >= iters:
                # Another worker asked at the same moment and took the last slot: this trial is one too many.
                # FAIL keeps it out of TPE's model and out of the pick; it was never evaluated.
                with deferred():
                    trial.set_user_attr("surplus", True)
                    study.tell(trial, state=TrialState.FAIL)
                run.surplus = True
                break
            thresholds, keeps = space.suggest(trial)
            result = evaluate(thresholds, keeps)
            record(trial, result)
        except BaseException:  # Ctrl-C, SIGTERM or an error: the trial ends FAIL, not RUNNING forever
            if trial is not None:
                with deferred(), contextlib.suppress(Exception):
                    study.tell(trial, state=TrialState.FAIL)
            raise
        with deferred():
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
