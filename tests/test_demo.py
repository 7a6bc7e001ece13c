"""The embedded demo: task generator, shipped model, loading offline (fast: no training here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import erase
from erase.profile import ImageProcessing
from erase_calibrate.tasks.sources import demo as tasks
from erase_calibrate.models.demo import MAX_PIXELS, MIN_PIXELS, build_demo_processor, demo_model_path, load_demo
from erase_calibrate.tasks import encode_batch as encode


@pytest.fixture(scope="module")
def entropy_profile():
    """Any 28-px-token profile at the demo's pixel budget: only the resize and the grid matter here."""
    return erase.load_profile("qwen2.5-vl-7b").replace(image_processing=ImageProcessing(MIN_PIXELS, MAX_PIXELS))


@pytest.fixture(scope="module")
def demo():
    torch.set_num_threads(2)
    return load_demo()


def test_generator_is_deterministic_and_splits_differ():
    a = tasks.make_item(7, seed=3, split="test")
    b = tasks.make_item(7, seed=3, split="test")
    assert a.id == b.id and a.references == b.references and a.prompt == b.prompt
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert a.metadata == b.metadata
    others = [tasks.make_item(7, seed=4, split="test"), tasks.make_item(7, seed=3, split="calibration")]
    assert all(not np.array_equal(np.asarray(a.image), np.asarray(o.image)) for o in others)


def test_items_follow_the_benchmark_item_format():
    items = tasks.generate_items(36, seed=0)
    assert {(it.metadata["task"], it.metadata["background"]) for it in items} == {
        (t, b) for t in tasks.TASKS for b in tasks.BACKGROUNDS
    }
    for it in items:
        assert it.benchmark == "demo" and it.image.mode == "RGB" and it.image.size == (448, 448)
        assert it.prompt.startswith(it.question) and len(it.references) == 1
        assert it.answer in tasks.answer_vocabulary(it.metadata["task"])
        assert 1 <= len(it.metadata["answer_tokens"]) <= tasks.MAX_COUNT  # a small region
    assert [it.id for it in tasks.calibration_items(5)] == [f"calibration-0-{i}" for i in range(5)]


def test_scorer_is_exact_match_after_lowercasing_and_stripping():
    item = tasks.make_item(2, seed=0)  # word task
    assert item.metadata["task"] == "word"
    assert tasks.score(item, f"  {item.answer.upper()}. ") == 1.0
    assert tasks.score(item, item.answer.replace(" ", "-")) == 1.0
    assert tasks.score(item, "somewhere") == 0.0


def test_complexity_is_spread_and_the_answer_stands_out_on_simple_images(entropy_profile):
    items = tasks.generate_items(72, seed=1)
    h = {"simple": [], "complex": []}
    for it in items:
        res = erase.stage1.score_image(it.image, entropy_profile)
        h[it.metadata["complexity"]].append(res.global_entropy)
        if tasks.is_simple(it):
            # entropy ranking keeps the answer region within the top 40% of tokens
            pe = res.patch_entropy.ravel()
            ranks = [(pe > pe[t]).sum() for t in it.metadata["answer_tokens"]]
            assert max(ranks) < 0.4 * pe.size
    assert max(h["simple"]) < 1.0 < 2.0 < min(h["complex"])
    assert np.median(h["complex"]) - np.median(h["simple"]) > 2.5


def test_items_have_at_least_256_vision_tokens():
    processor = build_demo_processor()
    items = tasks.generate_items(6, seed=0)
    enc = encode(processor, items, with_answers=True)
    tokens = enc["image_grid_thw"].prod(-1) // 4
    assert (tokens >= 256).all()
    assert (enc["input_ids"] == processor.image_token_id).sum(1).tolist() == tokens.tolist()
    # training loss sees only the answer and <|im_end|>
    for b, it in enumerate(items):
        kept = enc["labels"][b][enc["labels"][b] != -100].tolist()
        assert processor.tokenizer.decode(kept) == it.answer + "<|im_end|>"


def test_auxiliary_targets_mark_exactly_the_answer_tokens():
    from erase_calibrate.demo.train import token_classes, token_targets

    items = tasks.generate_items(12, seed=2)
    targets = token_targets(items).view(len(items), -1)
    classes = token_classes()
    for item, row in zip(items, targets):
        marked = row.nonzero().flatten().tolist()
        assert marked == sorted(item.metadata["answer_tokens"])
        shown = [classes[c] for c in row[marked].tolist()]
        assert shown == list(item.metadata["token_labels"])
        if item.metadata["task"] in ("letter", "digit", "color", "shape"):
            assert item.answer in shown[0].split(":")


def test_demo_model_path_is_shipped():
    path = demo_model_path()
    assert path.is_dir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json", "chat_template.jinja"):
        assert (path / name).is_file(), name
    assert (path / "model.safetensors").stat().st_size < 8 * 2**20  # a few MB


def test_shipped_model_loads_offline_and_answers_held_out_items(demo):
    from erase_calibrate.demo.evaluate import answer_items

    model, processor = demo
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert model.config.text_config.num_hidden_layers > 3  # the demo profile's Stage 2 layers exist
    items = tasks.heldout_items(10, seed=123)
    answers, _ = answer_items(model, processor, items, batch=10)
    correct = sum(tasks.score(it, a) for it, a in zip(items, answers))
    assert correct >= 7, list(zip([it.answer for it in items], answers))


def erase_demo(*args, cwd=None) -> "subprocess.CompletedProcess":
    import subprocess
    import sys

    code = "from erase_calibrate.cli.demo_cmd import main; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_erase_demo_before_and_after(tmp_path):
    import json

    res = erase_demo("--json", "--repeats", "1", "--calibration", tmp_path / "none")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["profile"] == "demo (shipped)"
    samples = report["samples"]
    assert len(samples) == 6 and {s["background"] for s in samples} == set(tasks.BACKGROUNDS)
    for s in samples:
        base, pruned = s["base"], s["erase"]
        assert base["tokens_after_stage2"] == base["tokens_total"] == 256 and base["level"] is None
        assert pruned["tokens_after_stage2"] <= pruned["tokens_after_stage1"] < pruned["tokens_total"] == 256
        assert pruned["level"] in (1, 2, 3, 4) and pruned["prefill_ms"] > 0
    # the calibrated profile prunes simple pages harder than complex scenes
    simple = [s["erase"]["tokens_after_stage1"] for s in samples if s["background"] in tasks.SIMPLE_BACKGROUNDS]
    complex_ = [s["erase"]["tokens_after_stage1"] for s in samples if s["background"] in tasks.COMPLEX_BACKGROUNDS]
    assert max(simple) < min(complex_)


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--image", "/nonexistent.png", "--question", "What?"], "/nonexistent.png"),
        (["--image", "x.png"], "--image and --question go together"),
        (["--profile", "/nonexistent.yaml"], "/nonexistent.yaml"),
    ],
)
def test_erase_demo_user_errors_are_one_line(args, expect):
    res = erase_demo(*args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in res.stderr
