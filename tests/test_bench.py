"""erase-bench on the tiny preset: records, FLOP model, outputs and user errors (no timing assertions)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import erase
from erase_calibrate.bench import flops, inputs, measure
from erase_calibrate.models import presets
from erase_calibrate.bench.flops import Schedule, TextShape, VisionShape
from erase_calibrate.cli import bench_cmd
from erase_calibrate.models.processor import build_processor, build_tokenizer

REQUIRED = (
    "method",
    "vision_tokens",
    "vit_ms",
    "prefill_ms",
    "decode_ms_per_token",
    "e2e_ms",
    "kv_bytes",
    "peak_mem_bytes",
    "predicted_speedup",
    "measured_speedup",
    "tokens_kept",
    "tokens_after_stage1",
    "level",
    "layer",
)
ALL_METHODS = ("base", "erase", "stage1", "fastv", "random", "uniform", "adavtp", "polymorphic")


def bench(monkeypatch, capsys, *args):
    """Run erase-bench in this process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["erase-bench", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        bench_cmd.main()
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One run of every method at 64 and 144 tokens, all three outputs written."""
    d = tmp_path_factory.mktemp("bench")
    paths = {"json": d / "out" / "b.json", "md": d / "out" / "b.md", "png": d / "b.png"}
    args = [
        "--model", "tiny", "--tokens", "64,144", "--methods", ",".join(ALL_METHODS), "--repeats", "1",
        "--warmup", "0", "--new-tokens", "2", "--json", paths["json"], "--markdown", paths["md"],
        "--plot", paths["png"], "--quiet",
    ]
    mp = pytest.MonkeyPatch()
    mp.setattr(sys, "argv", ["erase-bench", *map(str, args)])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a toy model: one thread is faster, and robust on a busy machine
    try:
        with pytest.raises(SystemExit) as exc:
            bench_cmd.main()
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    assert (exc.value.code or 0) == 0
    return paths, json.loads(paths["json"].read_text())


def _rec(report, method, tokens):
    (r,) = [r for r in report["records"] if r["method"] == method and r["vision_tokens"] == tokens]
    return r


def test_every_method_gives_a_record_with_the_required_keys(tiny_run):
    _, report = tiny_run
    assert "erase-bench --model tiny --tokens 64,144 --methods" in report["command"]  # env prefix allowed
    assert len(report["records"]) == len(ALL_METHODS) * 2
    for method in ALL_METHODS:
        for tokens in (64, 144):
            r = _rec(report, method, tokens)
            assert all(k in r for k in REQUIRED), [k for k in REQUIRED if k not in r]
            assert r["prefill_ms"] > 0 and r["vit_ms"] > 0 and r["e2e_ms"] >= r["prefill_ms"]
            assert r["decode_ms_per_token"] > 0 and r["decode_steps"] == 1
            assert r["kv_bytes"] > 0 and r["peak_mem_bytes"] > 0
            assert r["level"] == r["image_level"] in (1, 2, 3, 4)


def test_schedules_follow_the_strategies(tiny_run):
    _, report = tiny_run
    for tokens in (64, 144):
        k_final = int(tokens * 0.15 + 1e-9)
        base, er, s1, fv = (_rec(report, m, tokens) for m in ("base", "erase", "stage1", "fastv"))
        assert base["tokens_kept"] == base["tokens_after_stage1"] == tokens and base["layer"] is None
        assert er["tokens_kept"] == k_final < er["tokens_after_stage1"] < tokens
        assert er["layer"] in (1, 16)  # the 7B profile's early / late layer
        assert s1["layer"] is None and s1["tokens_kept"] == s1["tokens_after_stage1"] == er["tokens_after_stage1"]
        assert fv["layer"] == 1 and fv["tokens_after_stage1"] == tokens and fv["tokens_kept"] == k_final
        for m in ("random", "uniform", "adavtp"):
            r = _rec(report, m, tokens)
            assert r["layer"] is None and r["tokens_kept"] == r["tokens_after_stage1"] == k_final
        poly = _rec(report, "polymorphic", tokens)  # about twice the budget before the LLM, the budget after layer 3
        assert poly["layer"] == 3 and poly["tokens_after_stage1"] == int(tokens * 0.3 + 1e-9) and poly["tokens_kept"] == k_final
    assert "computed on the benchmark's own 2 image(s)" in report["facts"]["adavtp_reference"]


def test_flop_model_and_kv_cache(tiny_run):
    _, report = tiny_run
    for tokens in (64, 144):
        base = _rec(report, "base", tokens)
        assert base["predicted_speedup"] == 1.0 and base["measured_speedup"] == 1.0
        for m in ALL_METHODS[1:]:
            r = _rec(report, m, tokens)
            assert r["predicted_speedup"] > 1.0, m
            assert r["vit_flops"] == base["vit_flops"]  # pruning after the merger saves no ViT work
            assert r["llm_prefill_flops"] < base["llm_prefill_flops"]
        # evicting methods: every layer caches text + kept tokens
        text = base["text_tokens"]
        for m in ("erase", "stage1", "random", "uniform"):
            r = _rec(report, m, tokens)
            assert r["kv_bytes"] < base["kv_bytes"]
            assert r["kv_fraction"] == pytest.approx((text + r["tokens_kept"]) / (text + tokens), abs=1e-4)
        # FastV keeps layers 0..1 whole: its cache is bigger than ERASE's at the same budget
        assert _rec(report, "fastv", tokens)["kv_bytes"] > _rec(report, "erase", tokens)["kv_bytes"]
        for m in ("fastv", "polymorphic"):  # no eviction: layers up to the Stage 2 layer keep Stage 1's tokens
            r = _rec(report, m, tokens)
            assert r["kv_fraction"] == pytest.approx(r["kv_fraction_expected"], abs=1e-4)


def test_outputs_are_headed_by_the_command(tiny_run):
    paths, report = tiny_run
    md = paths["md"].read_text()
    assert md.startswith("# erase-bench\n") and report["command"] in md
    assert md.count("\n| erase |") == 2 and "predicted" in md
    with Image.open(paths["png"]) as im:
        assert im.format == "PNG" and im.size[0] >= 800
        px = np.asarray(im.convert("RGB"))
    assert (px != 255).any(axis=2).mean() > 0.01  # something was drawn
    assert sorted(p.name for p in paths["json"].parent.iterdir()) == ["b.json", "b.md"]  # no temp files left


def test_flop_model_by_hand():
    shape = TextShape(hidden=8, layers=4, heads=2, kv_heads=1, head_dim=4, intermediate=16, vocab=10)
    # per token per layer: q 8*8, k+v 2*8*4, o 8*8, mlp 3*8*16 -> 2 * 576
    assert shape.linear_per_token() == 2 * (64 + 64 + 64 + 384)
    base = flops.llm_prefill_flops(shape, Schedule.base(text_tokens=2, vision_tokens=8))
    n = 10
    assert base["linear"] == 4 * n * shape.linear_per_token()
    assert base["attention"] == 4 * (n * (n + 1) // 2) * 2 * 2 * 2 * 4
    pruned = Schedule(text_tokens=2, vision_tokens=8, after_stage1=6, after_stage2=2, layer=1, query_tokens=2)
    assert pruned.lengths(4) == [8, 8, 4, 4]
    p = flops.llm_prefill_flops(shape, pruned)
    assert p["stage2_scoring"] == 2 * 2 * 8 * 8 + 2 * 2 * 4 * 2 * 8
    assert p["total"] < base["total"]
    # Stage 1 only: every layer at text + kept
    s1 = Schedule(2, 8, 6, 6, None)
    assert s1.lengths(4) == [8, 8, 8, 8]


def test_vit_flops_window_and_full_attention():
    vs = VisionShape(hidden=4, depth=2, intermediate=8, out_hidden=8, patch_size=14, temporal_patch_size=2,
                     merge_size=2, window_size=112, fullatt_blocks=(1,))
    small = flops.vit_flops(vs, (1, 8, 8))  # one window of 4x4 merged tokens = all 64 patches
    same = VisionShape(**{**vs.__dict__, "fullatt_blocks": (0, 1)})
    assert flops.vit_flops(same, (1, 8, 8)) == small  # a single window is full attention
    big = flops.vit_flops(vs, (1, 64, 64))
    more_full = flops.vit_flops(same, (1, 64, 64))
    assert more_full > big > 60 * small


def test_strategies_of_the_methods():
    assert measure.strategy_for("base", 0.15) is None
    assert measure.strategy_for("erase", 0.15) == erase.Strategy()
    assert measure.strategy_for("stage1", 0.15) == erase.Strategy(stage2=False)
    assert measure.strategy_for("fastv", 0.15) == erase.Strategy(stage1="none", stage2_layer=1, evict=False)
    assert measure.strategy_for("random", 0.2) == erase.Strategy(stage1="random", stage1_keep_ratio=0.2, stage2=False)
    assert measure.strategy_for("uniform", 0.2).stage1 == "uniform"


@pytest.mark.parametrize("tokens", [64, 144, 1024, 1000])
def test_synthetic_images_give_the_requested_tokens(tokens):
    rows, cols = inputs.grid_for(tokens)
    assert rows * cols == tokens and max(rows, cols) <= 4 * min(rows, cols)
    if tokens > 200:
        return  # sizes only; the processor run below is the slow part
    im = inputs.synthetic_image(tokens)
    assert im.size == (cols * 28, rows * 28)
    processor = build_processor(build_tokenizer(), max_pixels=tokens * 28 * 28)
    batch = inputs.build_inputs(processor, im)
    assert int(batch["image_grid_thw"][0].prod()) // 4 == tokens


def test_image_kinds_differ_in_level():
    prof = erase.load_profile("qwen2.5-vl-7b")
    levels = {k: measure.numpy_level(inputs.synthetic_image(256, k), prof, 0.15, 28)[0] for k in inputs.IMAGE_KINDS}
    assert levels["photo"] == 1 and levels["page"] == 4


def test_presets_build_the_published_shapes():
    tok = build_tokenizer()
    cfg = presets.build_config(presets.PRESETS["qwen2.5-vl-7b"], tok)
    tc, vc = cfg.text_config, cfg.vision_config
    assert (tc.hidden_size, tc.num_hidden_layers, tc.num_attention_heads, tc.num_key_value_heads) == (3584, 28, 28, 4)
    assert (vc.depth, vc.hidden_size, vc.out_hidden_size, list(vc.fullatt_block_indexes)) == (32, 1280, 3584, [7, 15, 23, 31])
    assert sum(tc.rope_parameters["mrope_section"]) * 2 == tc.hidden_size // tc.num_attention_heads
    for name in ("qwen2.5-vl-7b-mini", "qwen2.5-vl-3b-mini", "tiny"):
        p = presets.PRESETS[name]
        assert p.layers == erase.load_profile(p.profile).model.fingerprint.num_layers


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--model", "no-such-preset"], "unknown model 'no-such-preset'"),
        (["--model", "demo"], "the demo model is missing at"),
        (["--model", "tiny", "--methods", "base,magic"], "unknown method 'magic'"),
        (["--model", "tiny", "--tokens", "1024,abc"], "--tokens '1024,abc'"),
        (["--model", "tiny", "--tokens", "0"], "--tokens '0'"),
        (["--model", "tiny", "--repeats", "0"], "--repeats '0'"),
        (["--model", "tiny", "--final-keep-ratio", "1.5"], "--final-keep-ratio"),
        (["--model", "tiny", "--device", "tpu"], "--device 'tpu'"),
        (["--model", "tiny", "--profile", "no-such-profile"], "unknown profile 'no-such-profile'"),
        (["--model", "./no/such/dir"], "no such checkpoint directory"),
    ],
)
def test_user_errors_are_one_line(monkeypatch, capsys, tmp_path, args, expect):
    monkeypatch.setenv("ERASE_DEMO_MODEL", str(tmp_path / "no-demo"))  # only the 'demo' case reads it
    code, out, err = bench(monkeypatch, capsys, *args, "--json", tmp_path / "b.json")
    assert code == 2
    assert expect in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_fails_before_any_work(monkeypatch, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = bench(monkeypatch, capsys, "--model", "tiny", "--json", tmp_path / "ok.json", "--plot", blocker / "p.png")
    assert code == 2 and "--plot" in err and "cannot write" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    code, _, err = bench(monkeypatch, capsys, "--model", "tiny", "--markdown", tmp_path)
    assert code == 2 and "is a directory" in err


def test_local_checkpoint_directory(monkeypatch, capsys, tmp_path):
    from erase.testing import tiny_profile
    from tiny_qwen import save_tiny

    ckpt = tmp_path / "ckpt"
    model, _ = save_tiny(ckpt)  # 4 decoder layers: no shipped profile fits
    capsys.readouterr()
    code, _, err = bench(monkeypatch, capsys, "--model", ckpt, "--tokens", "64")
    assert code == 2 and "pass --profile" in err and len(err.strip().splitlines()) == 1
    prof = tiny_profile(model).save(tmp_path / "tiny.yaml")
    out = tmp_path / "r.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code, stdout, err = bench(
            monkeypatch, capsys, "--model", ckpt, "--profile", prof, "--tokens", "64", "--methods", "base,erase",
            "--repeats", "1", "--warmup", "0", "--new-tokens", "2", "--json", out, "-q",
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err
    report = json.loads(out.read_text())
    assert report["model"]["source"] == "checkpoint" and report["model"]["profile"] == "tiny"
    er = _rec(report, "erase", 64)
    assert er["tokens_kept"] == int(64 * 0.25) and er["predicted_speedup"] > 1
    assert "| erase |" in stdout
