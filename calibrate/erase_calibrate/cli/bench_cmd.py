"""erase-bench: prefill / decode speed, KV cache and memory of ERASE and baselines.

Every method runs through the same runtime (`erase.apply` with an
`erase.Strategy`) on the same model and inputs; see `erase_calibrate.bench`.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from erase.fileio import atomic_write

from ._common import run

app = typer.Typer(
    add_completion=False,
    help="Benchmark ERASE and baselines (prefill, decode, KV cache, memory) on a preset or a local checkpoint.",
)

THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")


def command_line() -> str:
    """The exact command, with the environment variables that change CPU timings."""
    env = [f"{k}={shlex.quote(os.environ[k])}" for k in THREAD_ENV if k in os.environ]
    return " ".join([*env, "erase-bench", *(shlex.quote(a) for a in sys.argv[1:])])


@app.command()
def bench(
    model: str = typer.Option(..., "--model", "-m", help="Preset (qwen2.5-vl-7b, qwen2.5-vl-3b, qwen2.5-vl-7b-mini, qwen2.5-vl-3b-mini, tiny), demo (the shipped trained model) or a local checkpoint directory."),
    tokens: str = typer.Option("1024", "--tokens", help="Comma-separated vision-token counts, e.g. 1024,4096."),
    methods: str = typer.Option("base,erase", "--methods", help="Comma-separated: base, erase, stage1, fastv, random, uniform, adavtp, polymorphic."),
    final_keep_ratio: Optional[str] = typer.Option(None, "--final-keep-ratio", metavar="R", help="Share of vision tokens kept at the end (default: the profile's, 0.15)."),
    new_tokens: str = typer.Option("8", "--new-tokens", metavar="N", help="Tokens generated per run (decode is timed over N-1 steps)."),
    repeats: str = typer.Option("3", "--repeats", metavar="N", help="Timed repeats per (method, tokens); medians are reported."),
    warmup: str = typer.Option("1", "--warmup", metavar="N", help="Untimed rounds over all methods before each token count."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the records as JSON."),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="Write a markdown table."),
    plot_out: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG plot of speedup vs vision tokens."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16."),
    attn: str = typer.Option("sdpa", "--attn", help="Attention implementation: sdpa or eager."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Profile name or YAML (default: the preset's, e.g. qwen2.5-vl-7b)."),
    image_kind: str = typer.Option("mixed", "--image-kind", help="Synthetic image: mixed (page beside photo), page or photo."),
    image: Optional[Path] = typer.Option(None, "--image", help="Use this image (resized to each token count) instead of a synthetic one."),
    seed: str = typer.Option("0", "--seed", metavar="N", help="Seed of the random weights and synthetic images."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines on stderr."),
) -> None:
    """Measure ViT, prefill and decode time, KV-cache bytes and peak memory per method and token count."""
    from ..bench import report as breport
    from ..bench.run import BenchConfig, run as run_bench

    config = BenchConfig.parse(
        model, tokens=tokens, methods=methods, final_keep_ratio=final_keep_ratio, new_tokens=new_tokens, repeats=repeats,
        warmup=warmup, seed=seed, device=device, dtype=dtype, attn=attn, image_kind=image_kind, profile=profile, image=image,
        outputs={"--json": json_out, "--markdown": markdown_out, "--plot": plot_out},
    )

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    result = run_bench(config, command_line(), log)
    renderers = {"--json": breport.to_json, "--markdown": breport.to_markdown, "--plot": breport.to_png}
    rendered = [(path, renderers[option](result)) for option, path in config.outputs.items()]  # all, then write
    for path, data in rendered:
        atomic_write(path, data)
    typer.echo(breport.markdown_table(records=result["records"]))


main = run(app, "erase-bench")
