"""Writing a study's profile from the storage alone: no model, no data.

Both the worker that finishes a study and `erase-calibrate finalize` end here.
Writing is idempotent: when the study already has a profile for the same
finished trials and rule in this folder (recorded in the study), nothing is
written again. Writers on one machine are serialised by a lock file in the
output folder, so two of them never pick the same version number.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import optuna
from optuna.trial import TrialState

from erase import EraseError

from . import record
from .output import build_profile, next_version, write_outputs
from .study import WORKER, check_storage, check_study_name, count, finished, open_study, select

LOCK_NAME = ".erase-write.lock"


@dataclass
class Written:
    paths: dict[str, Path]
    new: bool  # False: an identical profile of this study state was already there


@contextlib.contextmanager
def out_lock(out: Path) -> Iterator[None]:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fh = open(out / LOCK_NAME, "a")
    except OSError as exc:
        raise EraseError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    try:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): single writer assumed
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
    finally:
        fh.close()


def write_profile(study: optuna.Study, setup: record.StudySetup, out: Path, rule: str) -> Written:
    """Select by `rule` among the study's complete trials and write profile, report and plot into `out`."""
    chosen = select(study, rule)
    complete = finished(study)
    template = setup.template_profile()
    with out_lock(out):
        prev = record.written(study, complete, rule=rule, out=out)
        if prev and prev.get("trial") == chosen.number:
            path = Path(prev["path"])
            if path.is_file():
                stem = path.name[: -len(".yaml")]
                return Written({"profile": path, "report": path.with_name(f"{stem}-report.md"),
                                "plot": path.with_name(f"{stem}-trials.png")}, new=False)
        final = dataclasses.replace(setup, iters=complete, select=rule, study_name=study.study_name)
        profile = build_profile(
            template, chosen, name=template.name, version=next_version(out, template.name), config=final,
            datasets=setup.datasets,
        )
        paths = write_outputs(out, profile, study, chosen, final)
        study.set_user_attr(
            record.written_key(complete, rule, out),
            {"path": str(paths["profile"].resolve()), "rule": rule, "trial": chosen.number,
             "version": profile.profile_version, "by": WORKER},
        )
    return Written(paths, new=True)


def finalize(storage: str | None, study_name: str, out: Path, rule: str | None) -> Written:
    """`erase-calibrate finalize`: the profile of an existing study, from what the study recorded."""
    if rule is not None and rule not in ("accuracy", "objective"):
        raise EraseError(f"--select must be 'accuracy' or 'objective', got {rule!r}")
    check_study_name(study_name)
    check_storage(storage)
    study = open_study(storage, study_name, out, seed=0, create=False)
    setup = record.load_setup(study)
    running = count(study, TrialState.RUNNING)
    if running:
        # Not an error: the pick is made from what is complete now, as asked.
        print(f"erase-calibrate: note: {running} trial(s) of {study_name!r} still running; finalizing with the completed ones",
              file=sys.stderr)
    return write_profile(study, setup, Path(out), rule or setup.select)
