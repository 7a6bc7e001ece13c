"""What a study remembers about its calibration, so any worker (or `finalize`) can write the profile.

Stored as study user attributes when a worker starts:

- ``erase.setup``: the template profile (model id, revision, fingerprint, pixel range, Stage 2
  layers), alpha, seed, levels, benchmarks, items per benchmark, answer length, the Stage 2 mode,
  the selection rule and the command. A worker joining a study must agree on everything that
  changes what a trial measures; otherwise it stops with a one-line error.
- ``erase.items``: per benchmark, how many calibration items the base model answered correctly
  and a digest of their ids; workers whose base answers kept different items would score trials
  on different data, so that is an error too.
- ``erase.written.N.RULE.FOLDER``: where the profile for N finished trials, picked by RULE, was
  written (FOLDER: a digest of the output folder's path).

Writing is claimed once per study state: the first worker to create the (empty) study
``NAME/profile@N`` in the same storage writes; creating a study that exists fails atomically in
both the journal and the database storages, so two workers finishing together never both write.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError

from erase import EraseError, Profile
from erase.profile import profile_from_dict

from .study import storage_of

SETUP = "erase.setup"
ITEMS = "erase.items"
WRITTEN = "erase.written"

# Options that change what a trial measures: every worker of a study must agree on them. The
# selection rule is one of them: trials are ruled out (stopped early) under it.
_SAME = ("alpha", "seed", "levels", "benchmarks", "data", "per_benchmark", "max_new_tokens", "stage2_keep_ratio", "select")
# The search space's parametrisation (search_space.py): a study of an earlier one cannot continue.
SPACE = "quantile-cuts, keep ratios on a 0.01 grid"


@dataclass
class StudySetup:
    model: str
    alpha: float
    seed: int
    levels: int
    benchmarks: list[str]
    per_benchmark: int
    max_new_tokens: int
    stage2_keep_ratio: float | None
    select: str
    study_name: str
    command: str
    template: dict[str, Any]
    data: list[str] = field(default_factory=list)  # own datasets: what each is (source, scorer, template)
    space: str = SPACE
    # filled from the study when the profile is written
    iters: int = 0
    datasets: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Any, template: Profile) -> "StudySetup":
        return cls(
            model=config.model, alpha=config.alpha, seed=config.seed, levels=config.levels,
            benchmarks=list(config.benchmarks), per_benchmark=config.per_benchmark,
            max_new_tokens=config.max_new_tokens, stage2_keep_ratio=config.stage2_keep_ratio,
            select=config.select, study_name=config.study_name, command=config.command, template=template.to_dict(),
            data=[d.spec() for d in getattr(config, "own", [])],
        )

    def template_profile(self) -> Profile:
        return profile_from_dict(self.template, f"study {self.study_name!r} ({SETUP})")

    def stored(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("iters")
        data.pop("datasets")
        return data


def save_setup(study: optuna.Study, setup: StudySetup) -> None:
    """Record the setup on a new study; on an existing one, refuse a worker that measures differently."""
    check_setup(study, setup)
    study.set_user_attr(SETUP, setup.stored())  # the latest worker's command


def check_setup(study: optuna.Study, setup: StudySetup) -> None:
    """Refuse (one line) to join a study that measures differently; changes nothing."""
    prev = study.user_attrs.get(SETUP)
    if prev is not None:
        mine = setup.stored()
        if prev.get("space") != mine["space"]:
            raise EraseError(
                f"study {study.study_name!r} was started by an earlier erase-calibrate with another search space; "
                "use another --study-name (or finalize it: erase-calibrate finalize)"
            )
        for key in _SAME:
            if prev.get(key, [] if key == "data" else None) != mine[key]:
                raise EraseError(_differs(study.study_name, key, prev.get(key), mine[key]))
        theirs, ours = prev.get("template", {}).get("model", {}), mine["template"]["model"]
        for key in ("revision", "fingerprint"):
            if theirs.get(key) != ours.get(key):
                raise EraseError(_differs(study.study_name, f"model {key}", theirs.get(key), ours.get(key)))
        if prev.get("template", {}).get("image_processing") != mine["template"]["image_processing"]:
            raise EraseError(
                _differs(study.study_name, "pixel range", prev["template"].get("image_processing"), mine["template"]["image_processing"])
            )


def _differs(study: str, what: str, theirs: Any, ours: Any) -> str:
    return f"study {study!r} was started with {what} {theirs!r}, this run has {ours!r}; use the same options or another --study-name"


def load_setup(study: optuna.Study) -> StudySetup:
    data = study.user_attrs.get(SETUP)
    if not isinstance(data, dict):
        raise EraseError(
            f"study {study.study_name!r} records no calibration setup (started by an older erase-calibrate?); "
            "rerun erase-calibrate with the same options to write its profile"
        )
    known = {f.name for f in dataclasses.fields(StudySetup)}
    setup = StudySetup(**{k: v for k, v in data.items() if k in known})
    items = study.user_attrs.get(ITEMS) or {}
    setup.datasets = {name: int(v["count"]) for name, v in items.items()}
    return setup


def save_items(study: optuna.Study, items: dict[str, list]) -> dict[str, int]:
    """Record (or check against the study's) which items calibrate; returns the item counts."""
    mine = {
        name: {"count": len(got), "ids": hashlib.sha256("\n".join(str(ci.item.id) for ci in got).encode()).hexdigest()[:16]}
        for name, got in items.items()
    }
    prev = study.user_attrs.get(ITEMS)
    if prev is not None and prev != mine:
        differ = sorted(n for n in set(prev) | set(mine) if prev.get(n) != mine.get(n))
        raise EraseError(
            f"this worker's calibration items differ from study {study.study_name!r}'s ({', '.join(differ)}): "
            "its base answers kept other items; give every worker the same data, model revision, dtype and "
            "device type, or copy OUT/base-answers from the first worker"
        )
    if prev is None:
        study.set_user_attr(ITEMS, mine)
    return {name: v["count"] for name, v in mine.items()}


# ------------------------------------------------------------------ who writes the profile
def claim_name(study: optuna.Study, complete: int) -> str:
    return f"{study.study_name}/profile@{complete}"


def claim(study: optuna.Study, complete: int, worker: str) -> bool:
    """True for exactly one caller per (study, finished trials): it writes the profile."""
    try:
        token = optuna.create_study(study_name=claim_name(study, complete), storage=storage_of(study))
    except DuplicatedStudyError:
        return False
    token.set_user_attr("worker", worker)
    return True


def release(study: optuna.Study, complete: int) -> None:
    """Give a claim back (the write failed), so a rerun or another worker can write."""
    try:
        optuna.delete_study(study_name=claim_name(study, complete), storage=storage_of(study))
    except KeyError:
        pass


def claimed_by(study: optuna.Study, complete: int) -> str | None:
    try:
        token = optuna.load_study(study_name=claim_name(study, complete), storage=storage_of(study))
    except KeyError:
        return None
    return str(token.user_attrs.get("worker", "another worker"))


def written_key(complete: int, rule: str, out: Path) -> str:
    # one record per output folder: finalizing into another folder does not hide the workers' profile
    where = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:8]
    return f"{WRITTEN}.{complete}.{rule}.{where}"


def written(study: optuna.Study, complete: int, *, rule: str | None = None, out: Path | None = None) -> dict[str, Any] | None:
    """A record of a profile written for this many finished trials: by `rule` into `out` when given;
    otherwise preferring one in `out`."""
    prefix = f"{WRITTEN}.{complete}."
    found = [v for k, v in sorted(study.user_attrs.items()) if k.startswith(prefix) and isinstance(v, dict)]
    if rule is not None:
        found = [r for r in found if r.get("rule") == rule]
    here = [r for r in found if out is not None and Path(r["path"]).parent == Path(out).resolve()]
    if here or rule is not None:
        return here[0] if here else None
    return found[0] if found else None
