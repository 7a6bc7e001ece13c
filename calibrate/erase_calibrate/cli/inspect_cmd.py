"""erase-inspect: what Stage 1 sees in one image, and what it keeps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from erase import load_profile, stage1
from erase.fileio import atomic_write, check_writable
from erase.imaging import open_image, to_uint8

from ..overlay import png_bytes, render_overlay
from ._common import run

app = typer.Typer(add_completion=False, help="Score an image with ERASE Stage 1 and show what it keeps.")


@app.command()
def inspect(
    image: Path = typer.Argument(..., help="Image file (PNG, JPEG, ...)."),
    profile: str = typer.Option("qwen2.5-vl-7b", "--profile", "-p", help="Shipped profile name or YAML path."),
    final_keep_ratio: Optional[float] = typer.Option(
        None, "--final-keep-ratio", min=0.0, max=1.0, help="Final (Stage 2) keep ratio; default: the profile's."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
    patches: bool = typer.Option(False, "--patches", help="Include the per-token entropy grid (rows x cols)."),
    overlay: Optional[Path] = typer.Option(
        None, "--overlay", help="Write a PNG of the resized image with pruned tokens dimmed."
    ),
) -> None:
    """Print the global entropy, the complexity level, the tokens kept by Stage 1 and the Stage 2 layer."""
    prof = load_profile(profile)
    if final_keep_ratio is not None and final_keep_ratio <= 0:
        raise typer.BadParameter("must be in (0, 1]", param_hint="--final-keep-ratio")
    if overlay is not None:
        check_writable(overlay, "--overlay")
    token_px = prof.model.fingerprint.pixels_per_token
    original = to_uint8(open_image(image))
    resized = stage1.resized(original, prof)
    entropy = stage1.patch_entropy_rgb(resized, token_px, prof.stage1.entropy.grayscale_rounding)
    result = stage1.select(entropy, prof, final_keep_ratio)
    if overlay is not None:
        atomic_write(overlay, png_bytes(render_overlay(resized, result.grid, result.keep_indices, token_px)))

    report = {
        "image": str(image),
        "profile": prof.name,
        "size": [int(original.shape[1]), int(original.shape[0])],
        "resized": [int(resized.shape[1]), int(resized.shape[0])],
        "grid": list(result.grid),
        "global_entropy": round(result.global_entropy, 6),
        "level": result.level,
        "keep_ratio": result.keep_ratio,
        "tokens_total": result.tokens_total,
        "tokens_kept": result.tokens_kept,
        "stage2_layer": None if result.skip_stage2 else result.stage2_layer,
    }
    if patches:
        report["patch_entropy"] = [[round(float(v), 6) for v in row] for row in result.patch_entropy]
    if overlay is not None:
        report["overlay"] = str(overlay)
    if as_json:
        typer.echo(json.dumps(report))
        return
    thresholds = ", ".join(f"{t:g}" for t in prof.stage1.thresholds)
    lines = [
        f"image           {image}  ({report['size'][0]}x{report['size'][1]} -> {report['resized'][0]}x{report['resized'][1]})",
        f"profile         {prof.name} (v{prof.profile_version}, {prof.model.id})",
        f"grid            {result.grid[0]} x {result.grid[1]} tokens of {token_px}x{token_px} px",
        f"global entropy  {result.global_entropy:.4f} nats  (thresholds {thresholds})",
        f"level           {result.level} of {prof.num_levels}  (1 = most complex)",
        f"stage 1 keeps   {result.tokens_kept} of {result.tokens_total} tokens ({result.keep_ratio:.2%})",
        "stage 2 layer   "
        + ("skipped (stage 1 already reaches the final budget)" if result.skip_stage2 else f"{result.stage2_layer} (0-based)"),
    ]
    if overlay is not None:
        lines.append(f"overlay         {overlay}")
    typer.echo("\n".join(lines))


main = run(app, "erase-inspect")
