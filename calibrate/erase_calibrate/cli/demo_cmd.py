"""erase-demo: the demo model on a few samples, without and with an ERASE profile."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Optional

import typer

import erase
from erase import EraseError

from ._common import run

app = typer.Typer(add_completion=False, help=__doc__)

DEMO = "demo"  # the model source, its item source and its shipped profile share this name
# One sample per (task, background) pair shown by default: simple pages first, then complex scenes.
DEFAULT_SAMPLES = (("letter", "page"), ("color", "flat"), ("digit", "gradient"), ("word", "texture"), ("count", "clutter"), ("shape", "noise"))


def newest_calibrated(folder: Path, name: str = DEMO) -> tuple[erase.Profile, Path] | None:
    """The highest-version valid profile NAME[.vN].yaml in `folder` (what erase-calibrate wrote), if any."""
    best: tuple[erase.Profile, Path] | None = None
    for path in erase.registry.profile_files(name, folders=[folder]):
        try:
            prof = erase.load_profile(path)
        except EraseError:
            continue
        if best is None or prof.profile_version > best[0].profile_version:
            best = (prof, path)
    return best


def resolve_demo_profile(spec: Optional[str], calibration_dir: Path) -> tuple[erase.Profile, str]:
    """--profile if given; else the newest calibration in `calibration_dir`; else the shipped `demo`."""
    if spec is not None:
        return erase.load_profile(spec), spec
    found = newest_calibrated(calibration_dir)
    if found is not None:
        return found[0], str(found[1])
    return erase.load_profile(DEMO), f"{DEMO} (shipped)"


def run_sample(
    model: Any, processor: Any, item: Any, profile: erase.Profile | None, repeats: int, final_keep_ratio: float | None = None
) -> dict[str, Any]:
    """Answer `item` `repeats` times (without ERASE when `profile` is None); the prefill time is
    the median first forward of `generate()`, ERASE's own work included (erase-bench's probe)."""
    import torch

    from .. import tasks
    from ..bench.measure import Probe

    inputs = tasks.encode(processor, item)
    handle = erase.apply(model, profile, final_keep_ratio=final_keep_ratio) if profile is not None else None
    try:
        prefill_ms = []
        for _ in range(repeats):
            probe = Probe(model, sync=lambda: None)
            try:
                with torch.no_grad():
                    out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
            finally:
                probe.remove()
            prefill_ms.append(probe.forward_ms[0])
        stats = handle.stats[0][0] if handle is not None else None
    finally:
        if handle is not None:
            handle.remove()
    answer = tasks.decode(model, processor, out[0, inputs["input_ids"].shape[1] :].tolist()).text
    total = int(inputs["image_grid_thw"][0].prod()) // 4
    return {
        "answer": answer,
        "correct": bool(item.references) and tasks.score(item, answer) == 1.0,
        "tokens_total": total,
        "tokens_after_stage1": stats.tokens_after_stage1 if stats else total,
        "tokens_after_stage2": stats.tokens_after_stage2 if stats else total,
        "level": stats.level if stats else None,
        "prefill_ms": statistics.median(prefill_ms),
    }


def _check_fits_demo(prof: erase.Profile, source: str) -> None:
    """Refuse, before the model loads, a profile calibrated for another architecture."""
    from erase.matching import describe, mismatches

    from .. import models

    try:
        fp = models.identify(DEMO).fingerprint
    except EraseError:
        return  # no demo checkpoint: loading it says so
    diff = mismatches(prof.model.fingerprint, fp)
    if diff:
        raise EraseError(
            f"--profile {source}: calibrated for {prof.model.id} ({'; '.join(diff)}), not the demo model ({describe(fp)})"
        )


@app.command()
def demo(
    profile: Optional[str] = typer.Option(
        None, "--profile", "-p", help="Profile name or YAML path; default: newest in --calibration, else the shipped 'demo'."
    ),
    calibration: Path = typer.Option(Path("calibration"), help="Where erase-calibrate wrote its profiles."),
    image: Optional[Path] = typer.Option(None, help="Your own image instead of the generated samples (needs --question)."),
    question: Optional[str] = typer.Option(None, help="The question to ask about --image."),
    final_keep_ratio: Optional[float] = typer.Option(
        None, help="Share of vision tokens Stage 2 keeps, in (0, 1]; default: the profile's."
    ),
    seed: int = typer.Option(7, help="Seed of the generated samples (held-out split)."),
    repeats: int = typer.Option(3, min=1, max=1000, help="Runs per sample; prefill time is their median."),
    threads: int = typer.Option(2, min=1, max=1024, help="Torch CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Answer a few samples with the demo model, without and with the profile: answers, tokens kept, prefill time."""
    import torch

    from .. import models

    if final_keep_ratio is not None and not 0.0 < final_keep_ratio <= 1.0:
        raise EraseError(f"--final-keep-ratio must be in (0, 1], got {final_keep_ratio}")
    if not 0 <= seed <= 2**32 - 1:
        raise EraseError(f"--seed must be a whole number in 0..{2**32 - 1:,}, got {seed}")
    items = sample_items(image, question, seed)
    prof, source = resolve_demo_profile(profile, calibration)
    _check_fits_demo(prof, source)
    torch.set_num_threads(threads)
    from transformers import logging as hf_logging

    hf_logging.disable_progress_bar()  # stderr stays for errors
    loaded = models.load(DEMO)
    rows = []
    for item in items:
        base = run_sample(loaded.model, loaded.processor, item, None, repeats)
        pruned = run_sample(loaded.model, loaded.processor, item, prof, repeats, final_keep_ratio)
        rows.append({"item": item.id, "question": item.prompt, "reference": item.references[0] if item.references else None,
                     "background": item.metadata.get("background"), "base": base, "erase": pruned})
    if as_json:
        typer.echo(json.dumps({"profile": source, "samples": rows}, indent=1))
    else:
        typer.echo(table(rows, prof, source, repeats))


def sample_items(image: Optional[Path], question: Optional[str], seed: int) -> list[Any]:
    """The user's image and question, or one generated held-out item per default (task, background)."""
    from ..tasks.sources import demo as demo_tasks

    if (image is None) != (question is None):
        raise EraseError("--image and --question go together")
    if question is not None and not question.strip():
        raise EraseError("--question is empty")
    if image is not None:
        from erase.imaging import open_image

        return [demo_tasks.custom_item(open_image(image).convert("RGB"), question)]
    return [demo_tasks.make_item(i, seed=seed, split="test", task=t, background=b) for i, (t, b) in enumerate(DEFAULT_SAMPLES)]


def table(rows: list[dict[str, Any]], prof: erase.Profile, source: str, repeats: int) -> str:
    lines = [f"profile {prof.name} v{prof.profile_version} ({source}); prefill = first forward, median of {repeats}"]
    header = f"{'background':<10} {'question':<36} {'ref':<8} {'base':<10} {'ERASE':<10} {'level':>5} {'kept S1/S2':>12} {'prefill ms':>16}"
    lines += [header, "-" * len(header)]
    for r in rows:
        b, e = r["base"], r["erase"]
        mark = lambda x: (x["answer"] or "''") + (" ok" if x["correct"] else " x")  # noqa: E731
        kept = f"{e['tokens_after_stage1']}/{e['tokens_after_stage2']} of {e['tokens_total']}"
        lines.append(
            f"{(r['background'] or '-'):<10} {r['question'][:36]:<36} {(r['reference'] or '-'):<8} {mark(b):<10} {mark(e):<10} "
            f"{e['level'] if e['level'] is not None else '-':>5} {kept:>12} {b['prefill_ms']:7.1f} -> {e['prefill_ms']:6.1f}"
        )
    base_ms = sum(r["base"]["prefill_ms"] for r in rows)
    erase_ms = sum(r["erase"]["prefill_ms"] for r in rows)
    kept = sum(r["erase"]["tokens_after_stage2"] for r in rows) / sum(r["erase"]["tokens_total"] for r in rows)
    lines.append(
        f"total: base {sum(r['base']['correct'] for r in rows)}/{len(rows)} correct, ERASE {sum(r['erase']['correct'] for r in rows)}/{len(rows)}; "
        f"vision tokens kept {kept:.0%}; prefill {base_ms:.0f} ms -> {erase_ms:.0f} ms ({base_ms / max(erase_ms, 1e-9):.2f}x)"
    )
    return "\n".join(lines)


main = run(app, "erase-demo")
