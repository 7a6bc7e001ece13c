"""One calibration worker, end to end: base answers, the search, the pick, the files.

Several workers may run this on one study (see study.py); the profile is
written once, by the worker that claims the finished study (record.py),
normally the one that finishes the last trial. The others end with a note.

Nothing is written before the calibration items are known: the data is read
and checked, the model answers them (the base-answer cache is written only
once some item is answered correctly), and only then is the study created.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from optuna.trial import TrialState

from erase import EraseError, load_profile
from erase.fileio import check_writable
from erase.limits import MAX_LEVELS, MAX_PROCESSOR_PIXELS
from erase.profile import Profile
from erase.references import with_adavtp_reference

from .. import models, tasks
from ..interrupts import Interrupted
from ..models import check_device, check_dtype
from ..tasks import own_data
from . import record, staleness
from .base_answers import AnswerCache, cache_key, collect_correct
from .finalize import write_profile
from .memo import Memo
from .search_space import SearchSpace
from .study import (
    WORKER,
    AskLock,
    FreshStart,
    Heartbeat,
    WorkerRun,
    check_storage,
    check_study_name,
    count,
    fail_orphans,
    finished,
    journal_path,
    open_study,
    redact,
    run_trials,
    select,
    study_exists,
)
from .trials import TrialRunner
from .ui import Progress


@dataclass
class CalibrationConfig:
    model: str
    alpha: float = 0.65
    iters: int = 100
    levels: int = 4
    benchmarks: list[str] = field(default_factory=list)
    per_benchmark: int = 70
    seed: int = 0
    storage: str | None = None
    study_name: str | None = None
    out: Path = Path("calibration")
    device: str = "cpu"
    dtype: str = "float32"
    min_pixels: int | None = None
    max_pixels: int | None = None
    select: str = "accuracy"
    warm_start: str | None = None
    data_dir: str | None = None
    max_new_tokens: int = 16
    stage2_keep_ratio: float | None = None
    final_keep_ratio: float = 0.15
    pool_factor: int = 3
    command: str = ""
    revision: str | None = None  # hub ids: branch, tag or commit
    if_stale: str | None = None  # profile name or path: calibrate only when it is stale for the model
    batch_size: int | None = None  # None: 16 on CUDA, 8 on CPU
    datasets: list[str] = field(default_factory=list)  # own data: imagefolder / save_to_disk folders, hub ids
    prompt_template: str | None = None
    scorer: str = "vqa"
    heartbeat_interval: int = 60  # database storages; 0: off
    grace_period: int | None = None  # None: twice the interval
    own: list = field(default_factory=list)  # filled by validate(): an OwnDataset per --dataset

    def validate(self) -> None:
        """Every option checked before anything is loaded or written (a refused run writes nothing)."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise EraseError("--model is empty: give a hub id, a local checkpoint folder or 'demo'")
        if not 0.0 <= self.alpha <= 1.0:
            raise EraseError(f"--alpha must be in [0, 1], got {self.alpha}")
        _in_range("--iters", self.iters, 1, MAX_ITERS)
        _in_range("--levels", self.levels, 2, MAX_LEVELS)
        _in_range("--per-benchmark", self.per_benchmark, 1, MAX_PER_BENCHMARK)
        _in_range("--seed", self.seed, 0, MAX_SEED)
        _in_range("--max-new-tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        for name, px in (("--min-pixels", self.min_pixels), ("--max-pixels", self.max_pixels)):
            if px is not None:
                _in_range(name, px, 1, MAX_PROCESSOR_PIXELS)
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise EraseError(f"--min-pixels ({self.min_pixels}) exceeds --max-pixels ({self.max_pixels})")
        if self.select not in ("accuracy", "objective"):
            raise EraseError(f"--select must be 'accuracy' or 'objective', got {self.select!r}")
        for name, r in (("--stage2-keep-ratio", self.stage2_keep_ratio), ("--final-keep-ratio", self.final_keep_ratio)):
            if r is not None and not 0.0 < r <= 1.0:
                raise EraseError(f"{name} must be in (0, 1], got {r}")
        check_dtype(self.dtype)
        check_device(self.device)
        for name, value in (("--revision", self.revision), ("--if-stale", self.if_stale), ("--warm-start", self.warm_start)):
            if value is not None and not value.strip():
                raise EraseError(f"{name} is empty")
        if self.study_name is not None:
            check_study_name(self.study_name)
        check_storage(self.storage)
        if self.data_dir is not None:
            if not os.path.isdir(self.data_dir):
                what = "not a folder" if os.path.exists(self.data_dir) else "no such folder"
                raise EraseError(f"--data-dir {self.data_dir}: {what}")
            if not os.access(self.data_dir, os.R_OK | os.X_OK):
                raise EraseError(f"--data-dir {self.data_dir}: not a readable folder")
        if self.batch_size is not None:
            _in_range("--batch-size", self.batch_size, 1, MAX_BATCH)
        if self.heartbeat_interval < 0 or (self.grace_period is not None and self.grace_period < 1):
            raise EraseError("--heartbeat-interval must be >= 0 (0: off) and --grace-period >= 1")
        if (self.prompt_template is not None or self.scorer != "vqa") and not self.datasets:
            raise EraseError("--prompt-template and --scorer apply to --dataset data; give a --dataset")
        check_writable(self.out, "--out", folder=True)
        defaults = tasks.default_names(models.default_tasks(self.model), self.datasets)
        self.benchmarks = tasks.check_names(self.benchmarks or defaults)
        repeated = sorted({b for b in self.benchmarks if self.benchmarks.count(b) > 1})
        if repeated:
            raise EraseError(f"--benchmarks names {', '.join(repeated)} more than once")
        self.own = own_data.describe(self.datasets, self.scorer, self.prompt_template, set(self.benchmarks))
        if self.warm_start is not None:
            warm = load_profile(self.warm_start)
            if warm.num_levels != self.levels:
                raise EraseError(
                    f"--warm-start {self.warm_start}: the profile has {warm.num_levels} complexity levels, this search "
                    f"{self.levels} (--levels {self.levels}); pass --levels {warm.num_levels} or another profile"
                )


    @property
    def batch(self) -> int:
        return self.batch_size or models.default_batch(self.device)

    @property
    def heartbeat(self) -> Heartbeat:
        return Heartbeat(self.heartbeat_interval or None, self.grace_period)


MAX_ITERS = 1_000_000
MAX_PER_BENCHMARK = 100_000
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_NEW_TOKENS = 4096
MAX_BATCH = 4096


def _in_range(option: str, value: int, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise EraseError(f"{option} must be a whole number in {lo}..{hi:,}, got {value}")


def template_profile(loaded: Any, config: CalibrationConfig) -> Profile:
    """The profile the study starts from: the model's, with --levels and --final-keep-ratio."""
    return models.for_loaded(loaded, levels=config.levels, final_keep_ratio=config.final_keep_ratio)


@dataclass
class Outcome:
    paths: dict[str, Path] | None = None  # what this worker wrote
    note: str | None = None  # why it wrote nothing


def calibrate(config: CalibrationConfig, progress: Progress, say: Callable[[str], None] = print) -> Outcome:
    """One worker, end to end. Everything that can refuse the run is checked before anything is
    written; a failed start of a new study removes what it created; Ctrl-C or SIGTERM marks the
    running trial failed and raises `Interrupted`, saying how many trials the study keeps."""
    config.validate()
    out = Path(config.out)
    if config.if_stale:
        if not staleness.profile_exists(config.if_stale):
            say(f"stale: no profile {config.if_stale!r} yet; calibrating")
        else:
            verdict = staleness.check(config.model, config.if_stale, config.revision)
            if verdict.current:
                return Outcome(note=f"{verdict.line()}; nothing to calibrate")
            say(f"{verdict.line()}; calibrating")
    warm = load_profile(config.warm_start) if config.warm_start else None
    study = None
    try:
        # the model's config, the data, then the model: each can refuse the run, none writes anything
        models.identify(config.model, config.revision)
        limit = config.per_benchmark * config.pool_factor
        own = {ds.name: (own_data.load_items(ds, limit=limit, seed=config.seed), ds.spec()) for ds in config.own}
        pools = {
            name: (tasks.item_pool(name, data_dir=config.data_dir, limit=limit, seed=config.seed), name)
            for name in config.benchmarks
        }
        pools.update(own)  # the registry's benchmarks first, then the user's datasets
        loaded = models.load(
            config.model, device=config.device, dtype=config.dtype, min_pixels=config.min_pixels, max_pixels=config.max_pixels,
            revision=config.revision,
        )
        template = template_profile(loaded, config)
        config.study_name = check_study_name(config.study_name or f"{template.name.lstrip('.') or 'model'}-erase")
        if study_exists(config.storage, config.study_name, out):  # refuse another setup before the long phases
            existing = open_study(config.storage, config.study_name, out, config.seed, create=False)
            record.check_setup(existing, record.StudySetup.from_config(config, template))
        with FreshStart(config.storage, config.study_name, out) as fresh:
            items = _base_answers(config, loaded, pools, out, progress)
            runner = TrialRunner(
                loaded, items, template, tasks.score, alpha=config.alpha, max_new_tokens=config.max_new_tokens,
                stage2_keep_ratio=config.stage2_keep_ratio, batch_size=config.batch, memo=Memo(),
            )
            try:
                with progress.task("inputs + entropy", total=sum(len(v) for v in items.values())) as tick:
                    runner.prepare(on_item=tick)
                space = SearchSpace(runner.global_entropies(), levels=config.levels)  # too few distinct images: the error now
                # AdaVTP's reference statistics (erase.adavtp) on the same items; the profile carries them
                template = with_adavtp_reference(template, loaded.model, runner.item_inputs())
                study = fresh.study = open_study(config.storage, config.study_name, out, config.seed, heartbeat=config.heartbeat)
                record.save_setup(study, record.StudySetup.from_config(config, template))
                record.save_items(study, items)
                lock = AskLock(journal_path(config.storage, config.study_name, out))
                orphans = fail_orphans(study, lock)
                if orphans:
                    progress.note(f"resuming: {orphans} trial(s) of a stopped run marked failed")
                if warm is not None and not study.trials:
                    study.enqueue_trial(space.encode(warm.stage1.thresholds, warm.stage1.keep_ratios))
            except BaseException:
                runner.close()
                raise
        try:
            done = finished(study)
            with progress.task("trials", total=config.iters, completed=min(done, config.iters)) as tick:
                def on_trial(t: Any) -> None:
                    best = _best_line(study, config.select)
                    tick(description=f"trials  {best}")

                run = run_trials(
                    study, space, runner.evaluate, config.iters, on_trial=on_trial, lock=lock, rule=config.select,
                    memo=runner.memo,
                )
        finally:
            runner.close()
        if run.completed:
            progress.note(_run_line(run))
        return finish(study, config, out, run)
    except KeyboardInterrupt:
        raise Interrupted(_interrupted_line(study, config)) from None


def _base_answers(
    config: CalibrationConfig, loaded: Any, pools: dict[str, tuple[list, str]], out: Path, progress: Progress
) -> dict[str, list]:
    """Phase 1: the items the unpruned model answers correctly, per benchmark or dataset."""
    items: dict[str, list] = {}
    tried = 0
    for name, (pool, spec) in pools.items():
        key = cache_key(config.model, loaded.revision, spec, loaded.min_pixels, loaded.max_pixels, config.max_new_tokens)
        cache = AnswerCache(out / "base-answers", key, name)
        with progress.task(f"base answers  {name}", total=len(pool)) as tick:
            got = collect_correct(
                loaded, name, pool, config.per_benchmark, cache, tasks.score, config.max_new_tokens,
                on_item=lambda ok: tick(), batch_size=config.batch,
            )
        tried += min(len(pool), _answered(pool, got, config.per_benchmark))
        progress.note(f"{name}: {len(got)} correctly answered items kept (of {config.per_benchmark} wanted)")
        if got:
            items[name] = got
    if not items:
        raise EraseError(f"none of {tried} items answered correctly by the base model; check the prompt and answers")
    return items


def _interrupted_line(study: Any, config: CalibrationConfig) -> str:
    """What an interrupted worker leaves: the study's finished trials, and how to continue."""
    if study is None:
        return "interrupted before the study started; nothing was written"
    try:
        n = finished(study)
    except Exception:  # noqa: BLE001 - the storage went away: say what is known
        return f"interrupted: study {config.study_name!r} keeps its finished trials; rerun the same command to continue"
    return f"interrupted: study {config.study_name!r} keeps {n} finished trial(s); rerun the same command to continue"


def _answered(pool: list, kept: list, wanted: int) -> int:
    """How far into its pool a benchmark got (everything, unless it found `wanted` correct ones)."""
    if len(kept) < wanted or not kept:
        return len(pool)
    last = kept[-1].item
    return next((i + 1 for i, it in enumerate(pool) if it is last), len(pool))


def _run_line(run: WorkerRun) -> str:
    decided = run.evaluated + run.memo_hits
    hit = f"{run.memo_hits / decided:.0%}" if decided else "-"
    return (
        f"this worker: {run.completed} trial(s), {run.ruled_out} stopped early as ruled out; memo hits {hit} of "
        f"{decided} item results; {run.tokens / max(1, run.completed):,.0f} language-model tokens per trial"
    )


def finish(study: Any, config: CalibrationConfig, out: Path, run: WorkerRun) -> Outcome:
    """Write the profile if this worker claims the finished study; otherwise say who will."""
    name, iters = config.study_name, config.iters
    complete = finished(study)
    later = f"the worker that finishes the last trial writes the profile (or run: {finalize_command(config)})"
    if complete < iters:
        running = count(study, TrialState.RUNNING)
        return Outcome(note=f"study {name!r}: {complete} of {iters} trials finished, {running} running in other workers; {later}")
    if (run.surplus or run.waited) and not run.finished_study:
        return Outcome(note=f"study {name!r}: its last trials ran in other workers; {later}")
    select(study, config.select)  # no feasible trial: the error, before anything is claimed
    if not record.claim(study, complete, WORKER):
        prev = record.written(study, complete, out=out)
        if prev:
            return Outcome(note=f"study {name!r} ({complete} trials): its profile was already written: {prev['path']}")
        who = record.claimed_by(study, complete) or "another worker"
        return Outcome(note=f"study {name!r} ({complete} trials): {who} writes its profile (if it stopped, run: {finalize_command(config)})")
    try:
        written = write_profile(study, record.load_setup(study), out, config.select)
    except BaseException:
        record.release(study, complete)  # a rerun or finalize can write it
        raise
    return Outcome(paths=written.paths)


def finalize_command(config: CalibrationConfig) -> str:
    parts = ["erase-calibrate", "finalize", "--study-name", str(config.study_name), "--out", str(config.out)]
    if config.storage:
        parts += ["--storage", redact(config.storage)]
    return shlex.join(parts)


def _best_line(study: Any, rule: str) -> str:
    try:
        t = select(study, rule)
    except EraseError:
        return "(no feasible trial yet)"
    return f"best: acc {t.user_attrs['accuracy']:.3f}, pruning {t.user_attrs['mean_pruning']:.3f}"
