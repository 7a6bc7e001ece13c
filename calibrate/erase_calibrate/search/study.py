"""The Optuna study: storage, resumption, the trial loop and the pick.

The default storage is a journal file next to the output, so rerunning the same
command continues the study. Only public Optuna API is used.

A trial *finishes* COMPLETE (every item evaluated, F told to Optuna) or PRUNED
(ruled out: its accuracy, or F, already ranks below the best complete trial
under the selection rule, so it can never be selected; see trials.py). `iters`
counts finished trials, all workers together: a trial is only run when fewer
than `iters` trials numbered before it are finished or running, so workers
asking at the same moment never overshoot. Trial numbers are assigned in
creation order by both storages (RDB locks the study row, the journal orders
its log), which is what makes that count exact.

A worker killed mid-trial leaves that trial RUNNING. With a journal file, the
next run on the same host marks it failed when the process that owned it is
gone. With a database (RDB) storage, every worker records a heartbeat for its
running trial (Optuna's `RDBStorage(heartbeat_interval=..., grace_period=...)`;
under ask/tell nothing records it for us, so a thread here does, through the
storage's public `record_heartbeat`), and the others call
`optuna.storages.fail_stale_trials` before every ask and while they wait for the
last trials: a trial without a heartbeat for the grace period is failed and,
through `RetryHeartbeatStaleTrialCallback`, re-enqueued with the same
parameters, and the next free worker runs it. Workers of such a study wait
until it holds `iters` finished trials instead of leaving when the last trials
are running elsewhere, so someone is always there to notice.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import socket
import threading
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from erase import EraseError
from erase.fileio import check_writable
from erase.limits import open_regular

from ..interrupts import deferred

from .memo import Memo
from .objective import RULES, rank_key
from .sampler import TrialSeededTPE
from .search_space import SearchSpace
from .trials import Context, TrialResult

WORKER = f"{socket.gethostname()}:{os.getpid()}"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WAIT_POLL = 2.0  # seconds between looks at the study while other workers run its last trials


@dataclass(frozen=True)
class Heartbeat:
    """Optuna's heartbeat for database storages: seconds between beats, and without one before a
    running trial counts as dead (None: Optuna's default, twice the interval). interval None: off."""

    interval: int | None = 60
    grace: int | None = None


# The storage object each study was opened with: the claims in record.py open sibling studies on
# it, and the heartbeat writes to it (public storage methods, no private attribute of the study).
_STORAGES: "weakref.WeakKeyDictionary[optuna.Study, Any]" = weakref.WeakKeyDictionary()


def storage_of(study: optuna.Study) -> Any:
    try:
        return _STORAGES[study]
    except KeyError:
        raise EraseError(f"study {study.study_name!r} was not opened by erase-calibrate") from None


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


def open_storage(
    storage: str | None, study_name: str, out_dir: Path, *, create: bool = True, heartbeat: Heartbeat | None = None
) -> Any:
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
    beat = heartbeat if heartbeat is not None and heartbeat.interval else None
    for attempt in range(5):
        try:
            if beat is None:
                return optuna.storages.RDBStorage(storage)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    storage, heartbeat_interval=beat.interval, grace_period=beat.grace,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
                )
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
    storage: str | None, study_name: str, out_dir: Path, seed: int, *, create: bool = True,
    heartbeat: Heartbeat | None = None,
) -> optuna.Study:
    """Create or load the study; a plain path (or none) means a journal file.

    With `create=False` the study must exist (finalize reads a study, never starts one).
    `heartbeat` applies to database URLs only.
    """
    storage_obj = open_storage(storage, study_name, out_dir, create=create, heartbeat=heartbeat)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    where = redact(storage) if storage else str(journal_path(None, study_name, out_dir))
    try:
        if create:
            study = optuna.create_study(
                study_name=study_name, storage=storage_obj, sampler=TrialSeededTPE(seed), direction="maximize",
                load_if_exists=True,
            )
        else:
            study = optuna.load_study(study_name=study_name, storage=storage_obj, sampler=TrialSeededTPE(seed))
    except KeyError:
        raise EraseError(f"no study {study_name!r} in {where}") from None
    except Exception as exc:  # noqa: BLE001 - storage URLs fail in many ways; one line for the user
        raise EraseError(f"cannot open study {study_name!r} in {where}: {str(exc).strip().splitlines()[0]}") from None
    _STORAGES[study] = storage_obj
    return study


def study_exists(storage: str | None, study_name: str, out_dir: Path) -> bool:
    """Whether the study is already there, without creating anything (no journal file, no study)."""
    path = journal_path(storage, study_name, out_dir)
    if path is not None and not path.is_file():
        return False
    try:
        names = optuna.get_all_study_names(storage=open_storage(storage, study_name, out_dir, create=False))
    except EraseError:
        return False
    except Exception:  # noqa: BLE001 - an unreachable database: opening it for real says why
        return False
    return study_name in names


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
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
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


def finished(study: optuna.Study) -> int:
    """Trials that count towards --iters: complete, or stopped early as ruled out."""
    return count(study, *FINISHED)


# ----------------------------------------------------------------------------- heartbeat
class Beats:
    """The heartbeat of this worker's running trial, and failing other workers' stale ones.

    Active only for a database storage opened with a heartbeat interval. `Study.ask` warns that
    heartbeats are meant for `Study.optimize` (which starts a beating thread itself); under
    ask/tell this class is that thread, so the warning is silenced here.
    """

    def __init__(self, study: optuna.Study):
        self.study = study
        storage = _STORAGES.get(study)
        interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
        self.storage = storage if interval else None
        self.interval = int(interval or 0)
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.storage is not None

    def ask(self) -> optuna.trial.Trial:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            trial = self.study.ask()
        if self.enabled:
            self._start(trial.number)
        return trial

    def _start(self, number: int) -> None:
        storage = self.storage
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(self.study.study_name), number
        )
        storage.record_heartbeat(trial_id)  # at once: a trial without any beat is never found stale
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.interval):
                try:
                    storage.record_heartbeat(trial_id)
                except Exception:  # noqa: BLE001 - a missed beat: the next one may get through
                    pass

        self._stop, self._thread = stop, threading.Thread(target=beat, name=f"erase-heartbeat-{number}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join()
            self._stop = self._thread = None

    def fail_stale(self) -> None:
        """Fail the trials of workers that stopped beating (each is re-enqueued with its parameters)."""
        if self.enabled:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)


# ----------------------------------------------------------------------------- the loop
@dataclass
class WorkerRun:
    completed: int = 0  # trials this worker finished (complete or ruled out)
    ruled_out: int = 0  # of those, ruled out (PRUNED)
    surplus: bool = False  # other workers had already taken the last trials
    lost: int = 0  # trials of this worker another one failed as stale (they were re-run elsewhere)
    waited: bool = False  # waited for other workers' last trials (heartbeat storages)
    finished_study: bool = False  # one of its trials brought the study to `iters` finished trials
    tokens: int = 0  # language-model tokens this worker's trials processed
    evaluated: int = 0  # items decided by a forward pass
    memo_hits: int = 0  # items decided by the memo


class StudyContext(Context):
    """A trial's view of its study: the rival to beat, and where its results are shared."""

    def __init__(self, study: optuna.Study, trial: optuna.trial.Trial, rule: str):
        self.study = study
        self.trial = trial
        self.rule = rule
        self._batch = 0

    def rival(self) -> tuple[float, float] | None:
        best = best_complete(self.study, self.rule)
        return None if best is None else rank_key(self.rule, best.user_attrs["accuracy"], best.user_attrs["objective"])

    def remember(self, entries: list[tuple[int, int, int, bool]]) -> None:
        try:
            Memo.record(self.trial, self._batch, entries)
        except UpdateFinishedTrialError:
            pass  # another worker failed this trial as stale; its retry recomputes what it needs
        self._batch += 1


def run_trials(
    study: optuna.Study,
    space: SearchSpace,
    evaluate: Callable[..., TrialResult],
    iters: int,
    on_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None,
    lock: AskLock | None = None,
    rule: str = "accuracy",
    memo: Memo | None = None,
) -> WorkerRun:
    """Run trials until the study holds `iters` finished ones (counting other workers' too).

    `evaluate(thresholds, keep_ratios, context)` evaluates one configuration. A result that is
    ruled out is told to Optuna as PRUNED (TPE ranks pruned trials below every complete one, and
    the pick never takes them); otherwise the trial is told its F.
    """
    run = WorkerRun()
    beats = Beats(study)
    while True:
        beats.fail_stale()
        done, running = finished(study), count(study, TrialState.RUNNING)
        if done >= iters:
            break
        if done + running >= iters:
            if not beats.enabled:
                break  # the other workers finish the study (or a rerun on their host does)
            run.waited = True
            time.sleep(min(beats.interval, WAIT_POLL))
            continue
        trial = None
        try:
            with (lock or AskLock(None)).held(), deferred():  # a signal never separates a trial from its worker's name
                trial = beats.ask()
                trial.set_user_attr("worker", WORKER)
            if trials_before(study, trial.number) >= iters:
                # Another worker asked at the same moment and took the last slot: this trial is one too many.
                # FAIL keeps it out of TPE's model and out of the pick; it was never evaluated.
                with deferred():
                    trial.set_user_attr("surplus", True)
                    study.tell(trial, state=TrialState.FAIL)
                run.surplus = True
                if not beats.enabled:
                    break
                continue
            if memo is not None:
                memo.refresh(study)
            thresholds, keeps = space.suggest(trial)
            result = evaluate(thresholds, keeps, StudyContext(study, trial, rule))
            try:
                with deferred():
                    record(trial, result, rule)
                    if result.ruled_out:
                        frozen = study.tell(trial, state=TrialState.PRUNED)
                    else:
                        frozen = study.tell(trial, result.objective)
            except UpdateFinishedTrialError:
                run.lost += 1  # failed as stale by another worker (no heartbeat for the grace period)
                continue
        except BaseException:  # Ctrl-C, SIGTERM or an error: the trial ends FAIL, not RUNNING forever
            if trial is not None:
                with deferred(), contextlib.suppress(Exception):
                    study.tell(trial, state=TrialState.FAIL)
            raise
        finally:
            beats.stop()
        run.completed += 1
        run.finished_study = finished(study) >= iters
        run.ruled_out += int(result.ruled_out)
        run.tokens += result.tokens
        run.evaluated += result.evaluated
        run.memo_hits += result.memo_hits
        if on_trial is not None:
            on_trial(frozen)
    return run


def trials_before(study: optuna.Study, number: int) -> int:
    """Finished or running trials numbered below `number`: the ones that count before it."""
    live = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return sum(1 for t in live if t.number < number)


def record(trial: optuna.trial.Trial, r: TrialResult, rule: str = "accuracy") -> None:
    attrs: dict[str, Any] = {
        "mean_pruning": r.mean_pruning,
        "feasible": r.feasible,
        "empty_levels": int(sum(1 for c in r.shares if c == 0)),
        "generated": r.generated,
        "evaluated": r.evaluated,
        "memo_hits": r.memo_hits,
        "tokens": r.tokens,
        "all_evaluated": r.complete,
        "thresholds": list(r.thresholds),
        "keep_ratios": list(r.keep_ratios),
    }
    if r.complete:
        attrs["accuracy"], attrs["objective"] = r.accuracy, r.objective
    else:  # stopped early: what is known is a bound
        attrs["accuracy_at_most"], attrs["objective_at_most"] = r.accuracy, r.objective
    if r.ruled_out:
        attrs["ruled_out_under"] = rule
        attrs["rival"] = list(r.rival) if r.rival is not None else None
    for i, c in enumerate(r.shares, start=1):
        attrs[f"c{i}"] = c
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    trial.set_constraint("empty_levels", float(attrs["empty_levels"]))  # > 0: infeasible; TPE steers away


def _feasible_complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("feasible") and "accuracy" in t.user_attrs
    ]


def _key(rule: str, t: optuna.trial.FrozenTrial) -> tuple[float, float, int]:
    return (*rank_key(rule, t.user_attrs["accuracy"], t.user_attrs["objective"]), -t.number)


def best_complete(study: optuna.Study, rule: str) -> optuna.trial.FrozenTrial | None:
    done = _feasible_complete(study)
    return max(done, key=lambda t: _key(rule, t)) if done else None


def select(study: optuna.Study, rule: str) -> optuna.trial.FrozenTrial:
    """The paper's rule: highest accuracy among feasible trials, ties to higher F; or best F.

    Trials ruled out under `rule` are below a complete trial by construction, so the pick is among
    complete ones. Trials ruled out under the *other* rule join when they were fully evaluated;
    when they were stopped early their rank under `rule` is unknown, and that is an error.
    """
    if rule not in RULES:
        raise EraseError(f"--select must be 'accuracy' or 'objective', got {rule!r}")
    candidates = _feasible_complete(study)
    other = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if t.user_attrs.get("ruled_out_under", rule) != rule
    ]
    partial = [t for t in other if not t.user_attrs.get("all_evaluated")]
    if partial:
        under = partial[0].user_attrs.get("ruled_out_under")
        raise EraseError(
            f"{len(partial)} trial(s) of study {study.study_name!r} stopped early, ruled out under --select {under}: "
            f"they cannot be ranked by {rule}; use --select {under}"
        )
    candidates += [t for t in other if t.user_attrs.get("feasible") and "accuracy" in t.user_attrs]
    if not candidates and not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise EraseError(f"study {study.study_name!r} has no complete trial yet; run more trials")
    if not candidates:
        raise EraseError("no feasible trial: every completed trial left a complexity level empty; run more trials")
    return max(candidates, key=lambda t: _key(rule, t))
