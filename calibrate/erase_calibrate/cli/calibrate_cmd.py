"""erase-calibrate: search entropy thresholds and per-level keep ratios, write a profile.

Without a subcommand it calibrates (one worker; start the same command on several machines
with a shared --storage and --study-name to scale out). `check` tells whether a profile is
still current for a model; `finalize` writes a study's profile from its storage alone.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from erase import EraseError

from ..search.ui import Progress
from ._common import run

app = typer.Typer(
    add_completion=False,
    help=__doc__,
    invoke_without_command=True,
    epilog="Exit codes: 0 done (also when another worker writes the profile, or --if-stale finds it current); "
    "2 a user error, one line on stderr. check: 0 current, 3 stale. See docs/calibration.md.",
    context_settings={"help_option_names": ["--help", "-h"]},
    rich_markup_mode=None,
)

EXIT_CODES = """Exit codes: 0 current, 3 stale (the reason follows 'stale:'), 2 a user error
(no such profile, unknown model, malformed profile), one line on stderr."""


def _split(option: str, value: Optional[str]) -> list[str]:
    """A comma-separated option: [] when not given; an empty entry ('', 'a,,b', 'a,') is an error."""
    if value is None:
        return []
    names = [v.strip() for v in value.split(",")]
    if not all(names):
        raise EraseError(f"{option} {value!r}: an empty name; give names separated by commas, e.g. chartqa,docvqa")
    return names


def _folder(option: str, value: str) -> Path:
    """A folder option; empty (an unset shell variable, say) is an error, not the current folder."""
    if not value.strip():
        raise EraseError(f"{option} is empty; give a folder (e.g. {option} calibration)")
    return Path(value)


_REVISION_HELP = "Hub revision (branch, tag or commit) of MODEL; hub ids only. Default: main."


@app.callback()
def main_command(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(
        None, "--model", help="Hub id, local checkpoint folder, or 'demo' (the shipped demo model). Required to calibrate."
    ),
    alpha: float = typer.Option(0.65, help="Accuracy weight of F = alpha*Accuracy + (1-alpha)*sum c_i p_i, in [0, 1]."),
    iters: int = typer.Option(
        100, help="Finished trials the study should hold, all workers together (complete, or stopped early as ruled out)."
    ),
    levels: int = typer.Option(4, help="Complexity levels N (N-1 thresholds)."),
    benchmarks: Optional[str] = typer.Option(
        None, help="Comma-separated benchmarks; default: the eight calibration benchmarks ('demo' for --model demo)."
    ),
    per_benchmark: int = typer.Option(70, help="Correctly answered items kept per benchmark."),
    seed: int = typer.Option(0, help="Seed of the item sample and of the TPE sampler."),
    storage: Optional[str] = typer.Option(
        None,
        help="Optuna storage shared by all workers: a journal file path (default OUT/STUDY.journal) or a URL "
        "(postgresql://..., sqlite:///...).",
    ),
    study_name: Optional[str] = typer.Option(None, help="Study name; default MODEL-NAME-erase."),
    out: str = typer.Option("calibration", help="Output folder: profiles, reports, journal, base-answer cache."),
    device: str = typer.Option("cpu", help="Torch device, e.g. cpu, cuda, cuda:1."),
    dtype: str = typer.Option("float32", help="Model dtype: float32, bfloat16 or float16."),
    min_pixels: Optional[int] = typer.Option(None, help="Processor min_pixels (default: the checkpoint's)."),
    max_pixels: Optional[int] = typer.Option(None, help="Processor max_pixels (default: the checkpoint's)."),
    select: str = typer.Option("accuracy", help="'accuracy': highest accuracy among feasible trials (the paper); 'objective': best F."),
    warm_start: Optional[str] = typer.Option(None, help="Profile (name or path) enqueued as the first trial."),
    data_dir: Optional[str] = typer.Option(None, help="Folder with local parquet files instead of the hub."),
    max_new_tokens: int = typer.Option(16, help="Answer length limit for greedy decoding."),
    stage2_keep_ratio: Optional[float] = typer.Option(
        None, help="Evaluate trials with Stage 1+2 at this final keep ratio (default: Stage 1 only, as the paper)."
    ),
    final_keep_ratio: float = typer.Option(0.15, help="Default final keep ratio written into the profile."),
    revision: Optional[str] = typer.Option(None, help=_REVISION_HELP),
    if_stale: Optional[str] = typer.Option(
        None, metavar="PROFILE",
        help="Calibrate only if PROFILE (name or path) is stale for MODEL, as `check` decides (or does not exist yet); "
        "when it is current, print why and exit 0.",
    ),
    batch_size: Optional[int] = typer.Option(
        None, help="Items per forward pass in base answers and trials (default: 16 on CUDA, 8 on CPU)."
    ),
    dataset: Optional[list[str]] = typer.Option(
        None, "--dataset", metavar="PATH_OR_HUB_ID",
        help="Calibrate on your own data (repeatable): an imagefolder with metadata.jsonl (file_name, question, "
        "answers or answer, optional choices), a save_to_disk folder, or a hub id. Without --benchmarks, only these calibrate.",
    ),
    prompt_template: Optional[str] = typer.Option(
        None, help="Prompt for --dataset items, e.g. '{question}\nAnswer with one word.' ({choices}: the options). "
        "Default: the question as given."
    ),
    scorer: str = typer.Option("vqa", help="How --dataset answers are scored: exact, vqa, anls, relaxed or choice."),
    heartbeat_interval: int = typer.Option(
        60, help="Database storages: seconds between a worker's heartbeats (0: off); a trial silent for the grace "
        "period is failed and re-run by another worker."
    ),
    grace_period: Optional[int] = typer.Option(None, help="Seconds without a heartbeat before a trial counts as dead (default: 2x the interval)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Calibrate ERASE for MODEL and write the next version of its profile into OUT.

    Several workers (the same command, with the same --storage and --study-name) share one study:
    --iters counts the study's finished trials, and the worker that finishes the last one writes
    the profile; the others print a one-line note and exit 0.
    """
    if ctx.invoked_subcommand is not None:
        return
    if model is None:
        raise EraseError("--model is required to calibrate (or run a subcommand: check, finalize; see --help)")
    from ..search.run import CalibrationConfig, calibrate

    config = CalibrationConfig(
        model=model, alpha=alpha, iters=iters, levels=levels, benchmarks=_split("--benchmarks", benchmarks), per_benchmark=per_benchmark,
        seed=seed, storage=storage, study_name=study_name, out=_folder("--out", out), device=device, dtype=dtype, min_pixels=min_pixels,
        max_pixels=max_pixels, select=select, warm_start=warm_start, data_dir=data_dir, max_new_tokens=max_new_tokens,
        stage2_keep_ratio=stage2_keep_ratio, final_keep_ratio=final_keep_ratio, revision=revision, if_stale=if_stale,
        command=shlex.join(["erase-calibrate", *sys.argv[1:]]), batch_size=batch_size, datasets=list(dataset or []),
        prompt_template=prompt_template, scorer=scorer, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
    )
    from transformers import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars cover loading
    import datasets

    datasets.disable_progress_bars()  # reading parquet files: ours again (and a refusal stays one line)
    outcome = calibrate(config, Progress(enabled=not quiet), say=lambda line: typer.echo(f"erase-calibrate: {line}"))
    if outcome.paths is None:
        typer.echo(f"erase-calibrate: {outcome.note}")
        return
    _print_paths(outcome.paths)


def _print_paths(paths: dict[str, Path]) -> None:
    typer.echo(f"profile  {paths['profile']}")
    typer.echo(f"report   {paths['report']}")
    typer.echo(f"plot     {paths['plot']}")


@app.command(epilog=EXIT_CODES)
def check(
    model: str = typer.Option(..., "--model", help="Hub id, local checkpoint folder, or 'demo'."),
    profile: str = typer.Option(..., "--profile", help="Profile name (found as erase-profile finds it) or YAML path."),
    revision: Optional[str] = typer.Option(None, help=_REVISION_HELP),
) -> None:
    """Is PROFILE current for MODEL? Same model revision, same architecture fingerprint (family, pixels
    per token, layers, hidden size), this toolkit's schema_version and release series. Reads the model's
    config only, never its weights. Prints 'current: ...' (exit 0) or 'stale: <reasons>' (exit 3)."""
    from ..search.staleness import EXIT_STALE, check as check_profile

    verdict = check_profile(model, profile, revision)
    typer.echo(verdict.line())
    if not verdict.current:
        raise typer.Exit(EXIT_STALE)


@app.command()
def finalize(
    study_name: str = typer.Option(..., help="The study to finalize."),
    storage: Optional[str] = typer.Option(None, help="Its storage: a journal file path or a URL; default OUT/STUDY.journal."),
    out: str = typer.Option("calibration", help="Where to write the profile, report and plot."),
    select: Optional[str] = typer.Option(None, help="'accuracy' or 'objective'; default: the rule the study was run with."),
) -> None:
    """Write the profile of a study from its storage alone (no model, no data): what the workers
    recorded when they started, and the best of the complete trials. Writes nothing new when this
    folder already holds the profile of the same study state."""
    from ..search.finalize import finalize as finalize_study

    written = finalize_study(storage, study_name, _folder("--out", out), select)
    if not written.new:
        typer.echo(f"erase-calibrate: already written: {written.paths['profile']}")
        return
    _print_paths(written.paths)


main = run(app, "erase-calibrate")
