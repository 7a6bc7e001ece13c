"""erase-eval: accuracy of ERASE and baselines per benchmark and pruning level (the paper's Table 1).

Every method runs through the same runtime (`erase.apply` with a named strategy); see
`erase_calibrate.eval.run` for what "METHOD at pruning p" means.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer

from ._common import run

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


def _progress(quiet: bool) -> Callable[..., Any]:
    """A `progress(description, total)` context yielding `tick(advance=, description=)`: rich on a
    terminal, silent otherwise."""

    @contextlib.contextmanager
    def progress(description: str, total: int) -> Iterator[Callable[..., None]]:
        if quiet or not sys.stderr.isatty() or total == 0:
            yield lambda **kw: None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TimeRemainingColumn(), console=Console(stderr=True))
        with bar:
            tid = bar.add_task(description, total=total)
            yield lambda advance=1, **kw: bar.update(tid, advance=advance, **kw)

    return progress


@app.command()
def evaluate(
    model: str = typer.Option(..., "--model", "-m", help="demo (the shipped trained model), a hub id or a local checkpoint folder."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Profile name or YAML (default: the profile shipped for the model, e.g. demo for the demo, else 'auto': the one calibrated for the model)."),
    methods: str = typer.Option("base,erase,stage1,fastv,random,uniform,adavtp,polymorphic", "--methods", help="Comma-separated: base, erase, stage1, fastv, random, uniform, adavtp, polymorphic (base always runs)."),
    pruning: str = typer.Option("0.62,0.75,0.85,0.90", "--pruning", help="Comma-separated pruning levels in (0, 1): the share of each image's vision tokens removed by the end."),
    benchmarks: Optional[str] = typer.Option(None, "--benchmarks", help="Comma-separated benchmarks (default: the model's own tasks where it names them, e.g. demo for the demo, else ocrbench,textvqa,chartqa,docvqa,infovqa,mathvista)."),
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", metavar="PATH_OR_HUB_ID", help="Evaluate your own data instead (repeatable): an imagefolder with metadata.jsonl, a save_to_disk folder or a hub id."),
    scorer: str = typer.Option("vqa", help="How --dataset answers are scored: exact, vqa, anls, relaxed or choice."),
    prompt_template: Optional[str] = typer.Option(None, help="Prompt for --dataset items ({question}, {choices}); default: the question."),
    data_dir: Optional[str] = typer.Option(None, help="Folder with local parquet files instead of the hub."),
    limit: Optional[int] = typer.Option(None, "--limit", metavar="N", help="Items per benchmark (seeded sample; default: all, or a source's held-out split, 360 items for the demo)."),
    seed: int = typer.Option(0, help="Seed of the item sample (and of the demo's items)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write every row (benchmark, method, pruning, pruning_achieved, items, accuracy, retained) as JSON."),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="Write the table as markdown."),
    plot_out: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of accuracy against pruning, one line per method."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Per-item answers, reused by a rerun (default: ~/.cache/erase/eval)."),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16."),
    attn: str = typer.Option("sdpa", help="Attention implementation: sdpa or eager."),
    min_pixels: Optional[int] = typer.Option(None, help="Processor min_pixels (default: the profile's range on Qwen models)."),
    max_pixels: Optional[int] = typer.Option(None, help="Processor max_pixels (default: the profile's range on Qwen models)."),
    revision: Optional[str] = typer.Option(None, help="Hub revision (branch, tag or commit) of --model."),
    max_new_tokens: int = typer.Option(16, help="Answer length limit for greedy decoding."),
    batch: Optional[int] = typer.Option(None, "--batch", metavar="N", help="Items per generate() call, left padded (default: 16 on CUDA, 8 on CPU)."),
    allow_transfer: bool = typer.Option(False, help="Use a profile calibrated for another architecture (zero-shot)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or notes on stderr."),
) -> None:
    """Accuracy per benchmark and method at each pruning level, the share of base accuracy
    retained, and the mean pruning reached; answers are cached per item, so a rerun resumes."""
    from erase.fileio import atomic_write

    from ..eval import config as econfig, report
    from ..eval.run import evaluate as run_eval

    t0 = time.perf_counter()
    outputs = [("--json", json_out), ("--markdown", markdown_out), ("--plot", plot_out)]
    log = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    cfg = econfig.build(
        model=model, profile=profile, methods=methods, pruning=pruning, benchmarks=benchmarks, datasets=list(dataset or []),
        scorer=scorer, prompt_template=prompt_template, data_dir=data_dir, limit=limit, seed=seed, device=device, dtype=dtype,
        attn=attn, min_pixels=min_pixels, max_pixels=max_pixels, revision=revision, max_new_tokens=max_new_tokens, batch=batch,
        cache_dir=cache_dir, allow_transfer=allow_transfer, outputs=outputs,
    )
    from transformers import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bar covers the run; stderr stays for errors and notes
    started = _dt.datetime.now().astimezone()
    result = run_eval(cfg, progress=_progress(quiet), log=log)
    result = {
        "tool": "erase-eval",
        "command": shlex.join(["erase-eval", *sys.argv[1:]]),
        "date": started.isoformat(timespec="seconds"),
        "machine": {**econfig.machine(cfg.device), "wall_s": round(time.perf_counter() - t0, 1)},
        "model": econfig.describe_model(cfg),
        "profile": {"name": cfg.profile.name, "source": cfg.profile_source, "version": cfg.profile.profile_version},
        "settings": econfig.describe_settings(cfg),
        "notes": [*cfg.notes, *([result["adavtp_reference"]] if result["adavtp_reference"] else [])],
        **result,
    }
    rendered = [(p, f(result)) for p, f in ((json_out, report.to_json), (markdown_out, report.to_markdown), (plot_out, report.to_png)) if p]
    for path, data in rendered:
        atomic_write(path, data)
    typer.echo(report.text_table(result), nl=False)


main = run(app, "erase-eval")
