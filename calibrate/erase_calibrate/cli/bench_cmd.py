"""erase-bench: prefill / decode speed, KV cache and memory of ERASE and baselines.

Every method runs through the same runtime (`erase.apply` with an
`erase.Strategy`) on the same model and inputs; see `erase_calibrate.bench`.
"""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from erase import EraseError
from erase.fileio import atomic_write, check_writable

from ._common import run

app = typer.Typer(
    add_completion=False,
    help="Benchmark ERASE and baselines (prefill, decode, KV cache, memory) on a preset or a local checkpoint.",
)

DTYPES = ("float32", "bfloat16", "float16")
ATTNS = ("sdpa", "eager")
DEVICES = ("cpu", "cuda")


def _int(name: str, text: str, minimum: int, maximum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if not minimum <= value <= maximum:
        raise EraseError(f"{name} {text!r}: expected a whole number in {minimum}..{maximum:,}")
    return value


def _choice(name: str, text: str, choices: tuple[str, ...]) -> str:
    if text not in choices:
        raise EraseError(f"{name} {text!r}: expected one of {', '.join(choices)}")
    return text


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
    cmd = command_line()
    # ---- validate everything before any heavy work
    from ..bench import inputs as binputs
    from ..bench import measure, presets

    token_list = binputs.parse_tokens(tokens)
    method_list = measure.parse_methods(methods)
    n_new = _int("--new-tokens", new_tokens, 1, 4096)
    n_rep = _int("--repeats", repeats, 1, 10_000)
    n_warm = _int("--warmup", warmup, 0, 10_000)
    n_seed = _int("--seed", seed, 0, 2**32 - 1)
    device = _choice("--device", device, DEVICES)
    dtype = _choice("--dtype", dtype, DTYPES)
    attn = _choice("--attn", attn, ATTNS)
    image_kind = _choice("--image-kind", image_kind, binputs.IMAGE_KINDS)
    ratio = None
    if final_keep_ratio is not None:
        try:
            ratio = float(final_keep_ratio)
        except ValueError:
            ratio = -1.0
        if not 0.0 < ratio <= 1.0:
            raise EraseError(f"--final-keep-ratio {final_keep_ratio!r}: expected a number in (0, 1]")
    outs = [(o, p) for o, p in (("--json", json_out), ("--markdown", markdown_out), ("--plot", plot_out)) if p is not None]
    resolved = [p.resolve() for _, p in outs]
    if len(set(resolved)) != len(resolved):
        raise EraseError("--json, --markdown and --plot must be different files")
    for option, path in outs:
        check_writable(path, option)
    target = presets.resolve(model)

    import erase
    import torch
    from erase.references import with_adavtp_reference

    from ..bench import report as breport
    from ..offline_processor import build_processor

    from ..model_loading import check_device

    check_device(device)
    user_image = None
    if image is not None:
        from erase.imaging import open_image

        user_image = open_image(image)
    torch_dtype = getattr(torch, dtype)
    dev = torch.device(device)

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    # ---- model, tokenizer, profile
    t0 = time.perf_counter()
    if isinstance(target, presets.Preset):
        tokenizer = presets.default_tokenizer()
        prof = erase.load_profile(profile or target.profile)
        prof.check_depth(target.layers)
        mdl = presets.build_preset_model(target, tokenizer, device=device, dtype=torch_dtype, attn_implementation=attn, seed=n_seed)
        model_info: dict[str, Any] = {"name": target.name, "source": "preset (random weights)", "description": target.description}
    else:
        layers_to_profile = {28: "qwen2.5-vl-7b", 36: "qwen2.5-vl-3b"}
        n_layers = presets.checkpoint_config(target).text_config.num_hidden_layers
        name = profile or layers_to_profile.get(n_layers)
        if name is None:
            raise EraseError(f"--model {target}: no shipped profile fits {n_layers} decoder layers; pass --profile")
        prof = erase.load_profile(name)
        prof.check_depth(n_layers)
        mdl, tokenizer = presets.load_checkpoint(target, device=device, dtype=torch_dtype, attn_implementation=attn)
        model_info = {"name": str(target), "source": "checkpoint", "description": f"checkpoint {target}"}
    keep = ratio if ratio is not None else prof.stage2.final_keep_ratio
    model_info.update(
        parameters=sum(p.numel() for p in mdl.parameters()),
        dtype=dtype,
        attn=attn,
        profile=prof.name,
        profile_model=prof.model.id,
    )
    log(f"erase-bench: {model_info['name']} ready in {time.perf_counter() - t0:.1f} s ({model_info['parameters'] / 1e6:.1f} M parameters)")

    # ---- inputs, one case per token count
    token_px = presets.TOKEN_PX
    images = {}
    for t in token_list:
        images[t] = binputs.fit_image(user_image, t) if user_image is not None else binputs.synthetic_image(t, image_kind, n_seed)
    max_pixels = max(im.width * im.height for im in images.values())
    processor = build_processor(tokenizer, min_pixels=4 * token_px * token_px, max_pixels=max(max_pixels, 4 * token_px * token_px))
    image_token_id = mdl.config.image_token_id
    cases = []
    for t in token_list:
        im = images[t]
        t1 = time.perf_counter()
        inputs = binputs.build_inputs(processor, im)
        pre_ms = 1e3 * (time.perf_counter() - t1)
        ids = inputs["input_ids"][0]
        is_image = ids == image_token_id
        vision = int(is_image.sum())
        first = int(is_image.nonzero()[0])
        query = int((~is_image[first:]).sum())
        grid = tuple(int(v) for v in inputs["image_grid_thw"][0].tolist())
        level, entropy = measure.numpy_level(im, prof, keep, token_px)
        inputs = {k: (v.to(dev) if hasattr(v, "to") else v) for k, v in inputs.items()}
        cases.append(
            measure.Case(t, inputs, (im.width, im.height), round(pre_ms, 3), vision, int(ids.numel()) - vision, query, grid, level, entropy)
        )
        log(f"  {t} tokens: image {im.width}x{im.height}, {vision} vision + {int(ids.numel()) - vision} text tokens, level {level} (H = {entropy:.3f})")

    # AdaVTP reads reference statistics from the profile; the shipped profiles have none
    # (they need the real model), so they come from the benchmark's own images: right for
    # timing, not for accuracy.
    reference_note = None
    if "adavtp" in method_list and prof.methods.adavtp is None:
        prof = with_adavtp_reference(prof, mdl, [c.inputs for c in cases])
        ref = prof.methods.adavtp
        reference_note = (
            f"AdaVTP reference statistics computed on the benchmark's own {ref.images} image(s) "
            f"(erank_avg {ref.erank_avg:.3f}, tau_max {ref.tau_max:.4f}): for timing only"
        )
        log(f"  {reference_note}")

    # ---- measure
    machine = measure.machine_facts(dev)
    started = _dt.datetime.now().astimezone()
    records, facts = measure.run_benchmark(
        mdl, cases, method_list, prof, keep, new_tokens=n_new, repeats=n_rep, warmup=n_warm, device=dev, log=log
    )
    try:
        machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    machine["wall_s"] = round(time.perf_counter() - t0, 1)
    result = {
        "command": cmd,
        "tool": "erase-bench",
        "version": erase.__version__,
        "date": started.isoformat(timespec="seconds"),
        "machine": machine,
        "model": model_info,
        "settings": {
            "tokens": token_list,
            "methods": method_list,
            "final_keep_ratio": keep,
            "new_tokens": n_new,
            "repeats": n_rep,
            "warmup": n_warm,
            "image": str(image) if image is not None else f"synthetic {image_kind} (seed {n_seed})",
            "prompt": binputs.PROMPT,
            "seed": n_seed,
        },
        "facts": {**facts, **({"adavtp_reference": reference_note} if reference_note else {})},
        "definitions": {
            "predicted_speedup": "LLM prefill FLOPs of base / method, from the schedule applied (ViT excluded)",
            "measured_speedup": "LLM prefill time (first forward of generate) of base / method",
            "prefill_ms": "first forward of generate(): LLM prefill incl. ERASE Stage 1/2 work, without the ViT",
            "e2e_ms": "wall time of generate() (ViT + prefill + decode), processor excluded",
            "kv_bytes": "keys + values of all layers after prefill",
        },
        "records": records,
    }
    # ---- render everything, then write (atomically, each file)
    rendered = []
    if json_out is not None:
        rendered.append((json_out, breport.to_json(result)))
    if markdown_out is not None:
        rendered.append((markdown_out, breport.to_markdown(result)))
    if plot_out is not None:
        rendered.append((plot_out, breport.to_png(result)))
    for path, data in rendered:
        atomic_write(path, data)
    typer.echo(breport.markdown_table(records))


main = run(app, "erase-bench")
