"""Bad input, every command and public function: one line naming the problem, exit code 2 (or an
EraseError of the right kind), no traceback, no hang, and nothing written (docs/errors.md).

The commands run in this process (a subprocess costs seconds each); a case that would hang (a
FIFO read as a file) is bounded by the refusal itself, which happens before any read.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import erase
from conftest import ROOT
from erase import EraseError, EraseTypeError, EraseValueError, ImageError, ProfileError, stage1
from erase.imaging import open_image
from erase_calibrate.cli import bench_cmd, calibrate_cmd, demo_cmd, inspect_cmd, profile_cmd

PAGE = ROOT / "data_samples" / "images" / "page.png"
DEMO_PROFILE = ROOT / "profiles" / "demo.v1.yaml"
DEMO_MODEL = ROOT / "data_samples" / "demo-model"
MAINS = {
    "erase-inspect": inspect_cmd.main,
    "erase-profile": profile_cmd.main,
    "erase-bench": bench_cmd.main,
    "erase-demo": demo_cmd.main,
    "erase-calibrate": calibrate_cmd.main,
}


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but holds almost no data (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    """Bad files of every kind, in a folder of their own (the cases check that nothing else appears)."""
    k = tmp_path_factory.mktemp("kit")
    (k / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    (k / "big.png").write_bytes(_png_header(20_000, 10_000))  # 200 MP: over the default limit
    Image.new("RGB", (1, 20_000), (10, 20, 30)).save(k / "thin.png")
    Image.fromarray(np.random.default_rng(0).random((64, 64), dtype=np.float32)).save(k / "float.tif")
    nan = np.full((64, 64), 0.5, np.float32)
    nan[3, 3] = np.nan
    Image.fromarray(nan).save(k / "nan.tif")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buf, "PNG")
    (k / "trunc.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (k / "empty.png").write_bytes(b"")
    (k / "garbage.png").write_bytes(np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    os.mkfifo(k / "fifo.png")
    os.mkfifo(k / "fifo.yaml")
    (k / "folder.yaml").mkdir()

    good = DEMO_PROFILE.read_text()
    profiles = {
        "laughs": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b]\n",
        "aliased": good.replace("seed: 0", "seed: &s 0").replace("iterations: 30", "iterations: *s"),
        "deep": "a: " + "[" * 50_000 + "]" * 50_000 + "\n",
        "badtime": good.replace("date: '2026-11-21'", "date: 2026-13-45"),
        "badint": good.replace("seed: 0", "seed: !!int x12"),
        "pytag": good.replace("seed: 0", "seed: !!python/object/apply:os.system ['true']"),
        "ppt": good.replace("pixels_per_token: 28", "pixels_per_token: 100000000"),
        "minpx": good.replace("min_pixels: 200704", "min_pixels: 99999999999999999999"),
        "maxpx": good.replace("max_pixels: 200704", "max_pixels: 1000000000000"),
        "manytokens": good.replace("pixels_per_token: 28", "pixels_per_token: 2").replace("200704", "4000000"),
        "hugeint": good.replace("seed: 0", "seed: " + "9" * 5000),
        "nanratio": good.replace("final_keep_ratio: 0.15", "final_keep_ratio: .nan"),
        "infthreshold": good.replace("thresholds: [3.236407465360671", "thresholds: [.inf"),
        "negppt": good.replace("pixels_per_token: 28", "pixels_per_token: -28"),
        "manylevels": good.replace("keep_ratios: [", "keep_ratios: [" + "0.5, " * 40).replace(
            "thresholds: [", "thresholds: [" + ", ".join(str(100 - i) for i in range(40)) + ", "
        ),
        "slashname": good.replace("name: demo", "name: ../../etc/demo"),
        "dupkey": good + "name: other\n",
        "listroot": "- 1\n- 2\n",
        "scalarroot": "just a string\n",
        "empty": "",
        "tabs": "a:\n\t- b\n",
        "huge": good + "#" + "x" * (2 << 20) + "\n",
    }
    for name, text in profiles.items():
        (k / f"{name}.yaml").write_text(text)
    (k / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage" * 50)
    (k / "journal-garbage.journal").write_bytes(b"\x00\x01 this is not a journal\n")
    (k / "journal-json.journal").write_text('{"op_code": 0, "worker_id": "w"}\n{not json\n')
    noweights = k / "noweights"
    noweights.mkdir()
    for f in DEMO_MODEL.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, noweights / f.name)
    (k / "emptydir").mkdir()
    return k


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run_cli(tool: str, args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        MAINS[tool](args)
    out = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out.out, out.err


def assert_one_line_error(code: int, err: str, expect: str, tool: str, want: int = 2) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == want, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{tool}: "), err
    assert "Traceback" not in err
    assert expect.lower() in lines[0].lower(), (expect, lines[0])


# ------------------------------------------------------------------------------------------ the table
# (tool, arguments: {k} is the kit folder, {o} a fresh output folder; what the one line must say)
IMAGE_CASES = [
    ("{k}/bomb.png", "over the limit of 150,000,000"),
    ("{k}/big.png", "ERASE_MAX_IMAGE_PIXELS"),
    ("{k}/thin.png", "aspect ratio of 20000:1"),
    ("{k}/float.tif", "floating-point images are not supported"),
    ("{k}/nan.tif", "floating-point images are not supported"),
    ("{k}/trunc.png", "truncated"),
    ("{k}/empty.png", "not a readable image"),
    ("{k}/garbage.png", "not a readable image"),
    ("{k}/fifo.png", "FIFO"),
    ("/dev/null", "character device"),
    ("{k}", "is a directory"),
    ("{k}/nosuch.png", "no such image file"),
]
PROFILE_CASES = [
    ("{k}/laughs.yaml", "anchor &a is not allowed"),
    ("{k}/aliased.yaml", "alias *s is not allowed"),
    ("{k}/deep.yaml", "nested more than 16 levels"),
    ("{k}/badtime.yaml", "calibration.date: expected an ISO date"),
    ("{k}/badint.yaml", "tag !!int is not allowed"),
    ("{k}/pytag.yaml", "tag !!python/object/apply:os.system is not allowed"),
    ("{k}/ppt.yaml", "pixels_per_token: must be <= 256"),
    ("{k}/negppt.yaml", "pixels_per_token: must be >= 1"),
    ("{k}/minpx.yaml", "min_pixels: must be <= 67,108,864"),
    ("{k}/maxpx.yaml", "max_pixels: must be <= 67,108,864"),
    ("{k}/manytokens.yaml", "more than 262,144 tokens per image"),
    ("{k}/hugeint.yaml", "cannot read value"),
    ("{k}/nanratio.yaml", "final_keep_ratio: expected a finite number"),
    ("{k}/infthreshold.yaml", "thresholds: expected a finite number"),
    ("{k}/manylevels.yaml", "at most 16 levels"),
    ("{k}/slashname.yaml", "cannot be a file name"),
    ("{k}/dupkey.yaml", "duplicate key 'name'"),
    ("{k}/listroot.yaml", "expected a mapping, got list"),
    ("{k}/scalarroot.yaml", "expected a mapping, got str"),
    ("{k}/empty.yaml", "expected a mapping, got NoneType"),
    ("{k}/tabs.yaml", "not valid YAML at line 2"),
    ("{k}/huge.yaml", "larger than 1,048,576 bytes"),
    ("{k}/binary.yaml", "not a text file"),
    ("{k}/fifo.yaml", "FIFO"),
    ("{k}/folder.yaml", "is a directory"),
    ("/dev/null", "character device"),
    ("{k}/nosuch.yaml", "no such profile file"),
    ("no-such-profile-name", "unknown profile"),
    ("", "empty"),
]
CALIBRATE = ["--model", "demo", "--per-benchmark", "2", "--iters", "1", "--quiet", "--out", "{o}"]
CASES = [
    *[("erase-inspect", [img], expect) for img, expect in IMAGE_CASES],
    *[("erase-inspect", [str(PAGE), "--profile", p], expect) for p, expect in PROFILE_CASES],
    *[("erase-profile", ["show", p], expect) for p, expect in PROFILE_CASES],
    *[("erase-demo", ["--image", img, "--question", "what?"], expect) for img, expect in IMAGE_CASES[:10]],
    *[("erase-bench", ["--model", "tiny", "--image", img, "--json", "{o}/b.json"], expect) for img, expect in IMAGE_CASES[:10]],
    ("erase-inspect", [str(PAGE), "--overlay", "{k}"], "is a directory"),
    ("erase-inspect", [str(PAGE), "--final-keep-ratio", "0"], "--final-keep-ratio"),
    ("erase-inspect", [str(PAGE), "--final-keep-ratio", "nan"], "--final-keep-ratio"),
    ("erase-inspect", [str(PAGE), "--no-such-option"], "No such option"),
    ("erase-inspect", [], "Missing argument"),
    ("erase-profile", ["match", "{k}/emptydir"], "cannot read a model config"),
    ("erase-profile", ["match", "{k}/fifo.yaml"], "cannot read a model config"),
    ("erase-profile", ["frobnicate"], "No such command"),
    ("erase-demo", ["--profile", "{k}/laughs.yaml"], "anchor"),
    ("erase-demo", ["--profile", ""], "empty string"),
    ("erase-demo", ["--profile", "qwen2.5-vl-7b"], "not the demo model"),
    ("erase-demo", ["--image", str(PAGE)], "--image and --question go together"),
    ("erase-demo", ["--image", str(PAGE), "--question", " "], "--question is empty"),
    ("erase-demo", ["--seed", "-1"], "--seed"),
    ("erase-demo", ["--final-keep-ratio", "1.5"], "--final-keep-ratio"),
    ("erase-demo", ["--repeats", "0"], "--repeats"),
    ("erase-demo", ["--threads", "abc"], "--threads"),
    ("erase-bench", ["--model", "tiny", "--tokens", "0"], "--tokens"),
    ("erase-bench", ["--model", "tiny", "--tokens", "99999999"], "--tokens"),
    ("erase-bench", ["--model", "tiny", "--tokens", "16,16"], "appears twice"),
    ("erase-bench", ["--model", "tiny", "--new-tokens", "0"], "--new-tokens"),
    ("erase-bench", ["--model", "tiny", "--new-tokens", "10000000"], "--new-tokens"),
    ("erase-bench", ["--model", "tiny", "--repeats", "-1"], "--repeats"),
    ("erase-bench", ["--model", "tiny", "--seed", str(2**40)], "--seed"),
    ("erase-bench", ["--model", "tiny", "--device", "tpu"], "--device"),
    ("erase-bench", ["--model", "tiny", "--final-keep-ratio", "inf"], "--final-keep-ratio"),
    ("erase-bench", ["--model", "tiny", "--profile", "{k}/pytag.yaml"], "tag"),
    ("erase-bench", ["--model", "tiny", "--json", "{k}"], "is a directory"),
    ("erase-bench", ["--model", "tiny", "--json", "/proc/erase/b.json"], "cannot write there"),
    ("erase-bench", ["--model", "{k}/emptydir"], "not a checkpoint directory"),
    ("erase-bench", ["--model", "{k}/noweights", "--profile", "demo"], "cannot load"),
    ("erase-calibrate", [], "--model is required"),
    ("erase-calibrate", [*CALIBRATE, "--min-pixels", "0"], "--min-pixels must be a whole number in 1..67,108,864"),
    ("erase-calibrate", [*CALIBRATE, "--min-pixels", "-5"], "--min-pixels"),
    ("erase-calibrate", [*CALIBRATE, "--max-pixels", str(2**40)], "--max-pixels"),
    ("erase-calibrate", [*CALIBRATE, "--min-pixels", "5000", "--max-pixels", "4000"], "exceeds --max-pixels"),
    ("erase-calibrate", [*CALIBRATE, "--max-pixels", "1000"], "the checkpoint's min_pixels (200704) exceeds --max-pixels"),
    ("erase-calibrate", [*CALIBRATE, "--max-new-tokens", "0"], "--max-new-tokens"),
    ("erase-calibrate", [*CALIBRATE, "--device", "tpu"], "not a torch device"),
    ("erase-calibrate", [*CALIBRATE, "--device", "cuda:99"], "--device 'cuda:99'"),
    ("erase-calibrate", [*CALIBRATE, "--dtype", "int8"], "--dtype"),
    ("erase-calibrate", [*CALIBRATE, "--benchmarks", ""], "an empty name"),
    ("erase-calibrate", [*CALIBRATE, "--benchmarks", "demo,"], "an empty name"),
    ("erase-calibrate", [*CALIBRATE, "--benchmarks", "chartqa,ChartQA"], "more than once"),
    ("erase-calibrate", [*CALIBRATE, "--benchmarks", "nosuchbench"], "nosuchbench"),
    ("erase-calibrate", [*CALIBRATE, "--benchmarks", "chartqa"], "cannot load chartqa"),
    ("erase-calibrate", [*CALIBRATE, "--benchmarks", "chartqa", "--data-dir", "{k}/emptydir"], "no parquet files"),
    ("erase-calibrate", [*CALIBRATE, "--data-dir", "{k}/nosuchdir"], "no such folder"),
    # refused after the base answers (the demo model answers no ChartQA item): nothing stays behind
    ("erase-calibrate", [*CALIBRATE, "--benchmarks", "chartqa", "--data-dir", str(ROOT / "data_samples" / "benchmarks")],
     "answered correctly by the base model; check the prompt and answers"),
    ("erase-calibrate", [*CALIBRATE, "--study-name", ""], "--study-name ''"),
    ("erase-calibrate", [*CALIBRATE, "--study-name", "../escape"], "--study-name '../escape'"),
    ("erase-calibrate", [*CALIBRATE, "--study-name", "a/b"], "--study-name"),
    ("erase-calibrate", [*CALIBRATE, "--seed", "-1"], "--seed must be"),
    ("erase-calibrate", [*CALIBRATE, "--seed", str(2**40)], "--seed must be"),
    ("erase-calibrate", [*CALIBRATE, "--iters", "0"], "--iters"),
    ("erase-calibrate", [*CALIBRATE, "--levels", "1"], "--levels"),
    ("erase-calibrate", [*CALIBRATE, "--levels", "100"], "--levels"),
    ("erase-calibrate", [*CALIBRATE, "--per-benchmark", "0"], "--per-benchmark"),
    ("erase-calibrate", [*CALIBRATE, "--alpha", "nan"], "--alpha"),
    ("erase-calibrate", [*CALIBRATE, "--final-keep-ratio", "0"], "--final-keep-ratio"),
    ("erase-calibrate", [*CALIBRATE, "--stage2-keep-ratio", "2"], "--stage2-keep-ratio"),
    ("erase-calibrate", [*CALIBRATE, "--select", "best"], "--select"),
    ("erase-calibrate", [*CALIBRATE, "--iters", "abc"], "Invalid value for '--iters'"),
    ("erase-calibrate", [*CALIBRATE, "--warm-start", str(DEMO_PROFILE), "--levels", "3"], "has 4 complexity levels"),
    ("erase-calibrate", [*CALIBRATE, "--warm-start", "{k}/laughs.yaml"], "anchor"),
    ("erase-calibrate", [*CALIBRATE, "--storage", "{k}"], "not a regular file"),
    ("erase-calibrate", [*CALIBRATE, "--storage", ""], "--storage"),
    ("erase-calibrate", [*CALIBRATE, "--storage", "{k}/journal-garbage.journal"], "not an Optuna journal"),
    ("erase-calibrate", [*CALIBRATE, "--storage", "{k}/journal-json.journal"], "not a readable study journal"),
    ("erase-calibrate", [*CALIBRATE, "--storage", "/proc/erase/x.journal"], "cannot write there"),
    ("erase-calibrate", ["--model", "{k}/noweights", "--benchmarks", "demo", "--per-benchmark", "2", "--iters", "1", "--quiet", "--out", "{o}"], "cannot load the weights"),
    ("erase-calibrate", ["--model", "{k}/emptydir", "--benchmarks", "demo", "--per-benchmark", "2", "--iters", "1", "--quiet", "--out", "{o}"], "cannot load model"),
    ("erase-calibrate", ["--model", "", "--out", "{o}"], "--model is empty"),
    ("erase-calibrate", ["--model", "demo", "--out", ""], "--out is empty"),
    ("erase-calibrate", [*CALIBRATE, "--data-dir", str(PAGE)], "not a folder"),
    ("erase-calibrate", [*CALIBRATE[:-1], "/proc/erase-out"], "cannot write there"),
    ("erase-calibrate", [*CALIBRATE[:-1], str(PAGE)], "cannot write there"),
    ("erase-calibrate", ["check", "--model", "demo", "--profile", "{k}/fifo.yaml"], "FIFO"),
    ("erase-calibrate", ["check", "--model", "demo", "--profile", "{k}/laughs.yaml"], "anchor"),
    ("erase-calibrate", ["check", "--model", "{k}/emptydir", "--profile", "demo"], "cannot load model"),
    ("erase-calibrate", ["check", "--model", "demo"], "Missing option '--profile'"),
    ("erase-calibrate", ["finalize", "--study-name", "x", "--storage", "{k}/journal-garbage.journal", "--out", "{o}"], "not an Optuna journal"),
    ("erase-calibrate", ["finalize", "--study-name", "x", "--storage", "{k}/journal-json.journal", "--out", "{o}"], "not a readable study journal"),
    ("erase-calibrate", ["finalize", "--study-name", "../x", "--out", "{o}"], "--study-name '../x'"),
    ("erase-calibrate", ["finalize", "--study-name", "x", "--out", "{o}"], "no such study journal"),
    ("erase-calibrate", ["finalize", "--study-name", "x", "--storage", "{k}/fifo.yaml", "--out", "{o}"], "not a regular file"),
    ("erase-calibrate", ["finalize", "--study-name", "x", "--select", "best", "--out", "{o}"], "--select"),
]


def _case_id(case) -> str:
    tool, args, _ = case
    if args[: len(CALIBRATE)] == CALIBRATE:
        args = ["...", *args[len(CALIBRATE):]]
    shown = [Path(a).name if a.startswith(("/", "{k}/")) else a for a in args]
    return f"{tool} {' '.join(shown)}"[:100]


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_command_refuses_bad_input_in_one_line_and_writes_nothing(case, kit, tmp_path, monkeypatch, capsys):
    tool, args, expect = case
    monkeypatch.chdir(tmp_path)  # anything written by mistake into the working folder is seen
    out = tmp_path / "out"
    argv = [a.replace("{k}", str(kit)).replace("{o}", str(out)) for a in args]
    kit_before = _tree(kit)
    start = time.monotonic()
    code, _, err = run_cli(tool, argv, capsys)
    assert_one_line_error(code, err, expect.replace("{k}", str(kit)), tool)
    assert _tree(tmp_path) == set(), f"left behind: {sorted(_tree(tmp_path))}"
    assert _tree(kit) == kit_before
    assert time.monotonic() - start < 60


def test_profile_validate_reports_each_bad_file_on_one_line(kit, capsys):
    bad = [kit / "laughs.yaml", kit / "fifo.yaml", kit / "huge.yaml", kit / "folder.yaml"]
    code, out, err = run_cli("erase-profile", ["validate", str(DEMO_PROFILE), *map(str, bad)], capsys)
    assert code == 1
    assert out.count("ok ") == 1
    lines = err.strip().splitlines()
    assert len(lines) == len(bad) + 1 and all(line.startswith("INVALID ") for line in lines[:-1])
    assert lines[-1] == f"erase-profile: error: {len(bad)} of {len(bad) + 1} profile(s) invalid"


def test_limits_are_raised_by_environment_variables(kit, monkeypatch, capsys):
    monkeypatch.setenv("ERASE_MAX_IMAGE_PIXELS", "1000")
    code, _, err = run_cli("erase-inspect", [str(PAGE)], capsys)
    assert_one_line_error(code, err, "over the limit of 1,000; raise it with ERASE_MAX_IMAGE_PIXELS", "erase-inspect")
    monkeypatch.setenv("ERASE_MAX_IMAGE_PIXELS", "lots")
    code, _, err = run_cli("erase-inspect", [str(PAGE)], capsys)
    assert_one_line_error(code, err, "ERASE_MAX_IMAGE_PIXELS='lots': expected a positive whole number", "erase-inspect")
    monkeypatch.delenv("ERASE_MAX_IMAGE_PIXELS")

    monkeypatch.setenv("ERASE_MAX_PROFILE_BYTES", str(4 << 20))
    assert run_cli("erase-profile", ["show", str(kit / "huge.yaml")], capsys)[0] == 0  # a big comment, else valid
    monkeypatch.setenv("ERASE_MAX_PROFILE_BYTES", "100")
    code, _, err = run_cli("erase-profile", ["show", str(DEMO_PROFILE)], capsys)
    assert_one_line_error(code, err, "raise the limit with ERASE_MAX_PROFILE_BYTES", "erase-profile")
    monkeypatch.delenv("ERASE_MAX_PROFILE_BYTES")

    monkeypatch.setenv("ERASE_MAX_PROFILE_DEPTH", "2")
    code, _, err = run_cli("erase-profile", ["show", str(DEMO_PROFILE)], capsys)
    assert_one_line_error(code, err, "nested more than 2 levels deep", "erase-profile")


def test_raising_the_pixel_limit_lets_a_big_image_through_pil(tmp_path, monkeypatch):
    """Our limit replaces PIL's decompression-bomb check (PIL would refuse above 179 MP) and leaves
    PIL's global setting as it was."""
    before = Image.MAX_IMAGE_PIXELS
    path = tmp_path / "wide.png"
    Image.new("L", (4000, 100)).save(path)
    monkeypatch.setenv("ERASE_MAX_IMAGE_PIXELS", "500000")
    assert open_image(path).size == (4000, 100)
    monkeypatch.setenv("ERASE_MAX_IMAGE_PIXELS", "399999")
    with pytest.raises(ImageError, match="400,000 pixels, over the limit of 399,999"):
        open_image(path)
    assert Image.MAX_IMAGE_PIXELS == before


# ------------------------------------------------------------------------------------------ the API
def _tiny_model():
    from tiny_qwen import build_tiny_qwen25vl

    return build_tiny_qwen25vl()


@pytest.fixture(scope="module")
def profile():
    return erase.load_profile("demo")


def _api_cases(kit: Path, profile):
    page = Image.open(PAGE)
    return [
        (lambda: erase.load_profile(None), EraseTypeError, "profile: expected a profile name"),
        (lambda: erase.load_profile(3), EraseTypeError, "got int"),
        (lambda: erase.load_profile(b"demo"), EraseTypeError, "got bytes"),
        (lambda: erase.load_profile(""), ProfileError, "empty string"),
        (lambda: erase.load_profile("de\0mo"), ProfileError, "NUL"),
        (lambda: erase.load_profile("x" * 5000), ProfileError, "unknown profile"),
        (lambda: erase.load_profile(kit / "laughs.yaml"), ProfileError, "anchor"),
        (lambda: erase.load_profile(kit / "fifo.yaml"), ProfileError, "FIFO"),
        (lambda: erase.load_profile(kit), ProfileError, "is a directory"),
        (lambda: erase.profile.parse_profile_text(None, "x"), EraseTypeError, "profile text"),
        (lambda: erase.profile.profile_from_dict([1]), ProfileError, "expected a mapping"),
        (lambda: profile.replace(name=None), ProfileError, "name"),
        (lambda: profile.replace(name="a/b"), ProfileError, "cannot be a file name"),
        (lambda: profile.replace(profile_version="1"), ProfileError, "profile_version: expected an integer"),
        (
            lambda: profile.replace(model=erase.profile.ModelInfo("x", erase.Fingerprint("qwen2_5_vl", 10**9, 6, 128))),
            ProfileError,
            "pixels_per_token: must be in 1..256",
        ),
        (lambda: profile.save(None), EraseTypeError, "expected a file path"),
        (lambda: profile.save(kit), ProfileError, "is a directory"),
        (lambda: stage1.score_image(page, profile, final_keep_ratio=-1), EraseValueError, "final_keep_ratio must be in (0, 1]"),
        (lambda: stage1.score_image(page, profile, final_keep_ratio=0), EraseValueError, "final_keep_ratio"),
        (lambda: stage1.score_image(page, profile, final_keep_ratio=1.5), EraseValueError, "got 1.5"),
        (lambda: stage1.score_image(page, profile, final_keep_ratio=float("nan")), EraseValueError, "got nan"),
        (lambda: stage1.score_image(page, profile, final_keep_ratio="0.5"), EraseTypeError, "got str"),
        (lambda: stage1.score_image(page, profile, final_keep_ratio=True), EraseTypeError, "got bool"),
        (lambda: stage1.score_image(page, "demo"), EraseTypeError, "erase.load_profile"),
        (lambda: stage1.score_image(None, profile), EraseTypeError, "image: expected a PIL.Image.Image or a numpy array"),
        (lambda: stage1.score_image(str(PAGE), profile), EraseTypeError, "open_image"),
        (lambda: stage1.score_image(Image.open(kit / "trunc.png"), profile), ImageError, "truncated"),
        (lambda: stage1.score_image(Image.open(kit / "float.tif"), profile), ImageError, "floating-point"),
        (lambda: stage1.score_image(np.random.rand(64, 64), profile), ImageError, "floating-point"),
        (lambda: stage1.score_image(np.full((64, 64), np.nan, np.float32), profile), ImageError, "floating-point"),
        (lambda: stage1.score_image(np.zeros((64, 64), np.int64), profile), ImageError, "unsupported image dtype"),
        (lambda: stage1.score_image(np.zeros((2, 3, 4, 5), np.uint8), profile), ImageError, "shape"),
        (lambda: stage1.score_image(np.zeros((0, 5), np.uint8), profile), ImageError, "empty"),
        (lambda: stage1.score_image(np.zeros((1, 5000), np.uint8), profile), ImageError, "aspect ratio"),
        (lambda: stage1.select([[1.0]], profile), EraseTypeError, "patch_entropy"),
        (lambda: open_image(None), EraseTypeError, "expected a file path"),
        (lambda: open_image(kit / "bomb.png"), ImageError, "over the limit"),
        (lambda: open_image(kit / "fifo.png"), ImageError, "FIFO"),
        (lambda: open_image("/dev/zero"), ImageError, "character device"),
        (lambda: erase.apply(None, "demo"), EraseTypeError, "model: expected a loaded model"),
        (lambda: erase.apply(torch.nn.Linear(2, 2), "demo"), EraseTypeError, "no adapter for Linear"),
        (lambda: erase.apply(_tiny_model(), 3), EraseTypeError, "profile: expected an erase.Profile"),
        (lambda: erase.apply(_tiny_model(), "demo", final_keep_ratio=2), EraseValueError, "final_keep_ratio must be in (0, 1]"),
        (lambda: erase.apply(_tiny_model(), "demo", final_keep_ratio="x"), EraseTypeError, "final_keep_ratio"),
        (lambda: erase.apply(_tiny_model(), "demo", allow_transfer="yes"), EraseTypeError, "allow_transfer"),
        (lambda: erase.apply(_tiny_model(), "demo", stage1_site=None), EraseTypeError, "stage1_site"),
        (lambda: erase.apply(_tiny_model(), "demo", stage1_site="vit"), EraseValueError, "stage1_site"),
        (lambda: erase.apply(_tiny_model(), kit / "pytag.yaml"), ProfileError, "tag"),
        (lambda: erase.Strategy(stage1="x"), EraseValueError, "stage1 must be one of"),
        (lambda: erase.Strategy(stage1_keep_ratio="0.5"), EraseTypeError, "stage1_keep_ratio"),
        (lambda: erase.Strategy(stage2_layer=-1), EraseValueError, "stage2_layer must be >= 0"),
        (lambda: erase.Strategy(evict="no"), EraseTypeError, "evict: expected True or False"),
        (lambda: erase.match_profile(None), EraseTypeError, "model_or_config"),
        (lambda: erase.fingerprint_of(3), EraseTypeError, "model_or_config"),
        (lambda: erase.find_profile(kit / "emptydir"), EraseError, "cannot read a model config"),
    ]


def test_public_functions_refuse_bad_arguments_at_the_door(kit, profile):
    failures = []
    for i, (call, kind, expect) in enumerate(_api_cases(kit, profile)):
        try:
            call()
        except EraseError as exc:
            msg = str(exc)
            if not isinstance(exc, kind) or expect not in msg or "\n" in msg:
                failures.append(f"case {i}: {type(exc).__name__}: {msg}")
        except BaseException as exc:  # noqa: BLE001 - what the test looks for
            failures.append(f"case {i}: leaked {type(exc).__name__}: {exc}")
        else:
            failures.append(f"case {i}: no error (expected {kind.__name__}: {expect})")
    assert not failures, "\n".join(failures)


def test_error_classes_follow_python_conventions():
    assert issubclass(EraseTypeError, TypeError) and issubclass(EraseTypeError, EraseError)
    assert issubclass(EraseValueError, ValueError) and issubclass(EraseValueError, EraseError)
    assert issubclass(ProfileError, EraseValueError) and issubclass(ImageError, EraseValueError)


def test_dates_stay_strings_and_plain_profiles_round_trip(profile, tmp_path):
    date = profile.calibration.date
    text = profile.to_yaml().replace(f"date: '{date}'", f"date: {date}")
    assert f"date: {date}\n" in text  # YAML would read the unquoted form as a date object
    loaded = erase.profile.parse_profile_text(text, "x")
    assert loaded.calibration.date == date
    profile.save(tmp_path / "p.yaml")
    assert erase.load_profile(tmp_path / "p.yaml") == profile


# ------------------------------------------------------------------------------------------ interrupts
def test_sigterm_unwinds_like_ctrl_c_and_waits_for_a_deferred_block():
    from erase_calibrate.interrupts import deferred, handled

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with handled():
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at once
        steps = []
        with pytest.raises(KeyboardInterrupt, match="SIGINT"):
            with deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                steps.append("finished the block")  # a journal append is never cut in half
        assert steps == ["finished the block"]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # restored


def test_interrupted_calibration_says_what_it_keeps_and_continues(tmp_path, capsys):
    """Ctrl-C mid-calibration: one line saying what the study keeps, exit 130, no RUNNING trial, no
    partial file; the same command then continues the study."""
    import optuna

    FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)  # pruned: ruled out early
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-c", "from erase_calibrate.cli.calibrate_cmd import main; main()", "--model", "demo",
        "--per-benchmark", "8", "--levels", "2", "--iters", "200", "--quiet", "--out", str(out),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    journal = out / "demo-erase.journal"

    def study():
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
        return optuna.load_study(study_name="demo-erase", storage=storage)

    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if not journal.exists():
                continue
            try:
                finished = len(study().get_trials(states=FINISHED))
            except KeyError:  # the journal file exists a moment before its study record does
                continue
            if finished >= 2:
                proc.send_signal(signal.SIGINT)
                break
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    done = study().get_trials(states=FINISHED)
    assert lines == [
        f"erase-calibrate: interrupted: study 'demo-erase' keeps {len(done)} finished trial(s); "
        "rerun the same command to continue"
    ], err
    assert not study().get_trials(states=(optuna.trial.TrialState.RUNNING,))  # the cut trial ended FAIL
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no half-written file
    assert not list(out.glob("*.yaml"))

    # the same command, asking for one more trial, continues the study
    args = [*cmd[3:-5], "--iters", str(len(done) + 1), "--quiet", "--out", str(out)]
    code, _, err = run_cli("erase-calibrate", args, capsys)
    assert code == 0, err  # every trial is feasible, and the first one completes
    assert len(list(out.glob("*.yaml"))) == 1
    states = [t.state for t in study().get_trials()]
    assert sum(states.count(s) for s in FINISHED) == len(done) + 1
    assert states.count(optuna.trial.TrialState.FAIL) <= 1  # the one cut by the signal, if any
