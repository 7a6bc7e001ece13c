"""ERASE on a tiny random Qwen2.5-VL: what is specific to it or tested on one family only.

The conformance suite that every adapter passes (keep-all, masked reference, batching,
decode positions, Stage 1 pixels) is in test_runtime_conformance.py.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import erase
from erase import EraseError, ProfileError
from erase.testing import masked_reference_logits, simple_image, tiny_profile, vision_output
from tiny_qwen import build_processor, build_tiny_qwen25vl, build_tokenizer, make_image, make_messages

NEW = 6


@pytest.fixture(scope="module")
def processor():
    return build_processor(build_tokenizer())


@pytest.fixture(scope="module")
def models(processor):
    cache = {}

    def get(attn="sdpa", dtype=torch.float32):
        key = (attn, dtype)
        if key not in cache:
            cache[key] = build_tiny_qwen25vl(tokenizer=processor.tokenizer, attn_implementation=attn, dtype=dtype)
        return cache[key]

    return get


def batch(processor, prompts):
    texts = [processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m, _ in prompts]
    images = [im for _, ims in prompts for im in ims]
    return dict(processor(text=texts, images=images or None, padding=True, return_tensors="pt"))


PROMPTS = {
    "one": [(make_messages("Describe the image."), [make_image(224, 224, 1)])],
    "batch3": [
        (make_messages("Describe the image."), [make_image(224, 224, 1)]),
        (make_messages("What is written here?", image_first=False), [simple_image(168, 224, 2)]),
        (make_messages("Count the shapes."), [make_image(112, 168, 3)]),
    ],
    "two_images": [(make_messages("Compare the two images.", n_images=2), [simple_image(112, 112, 4), make_image(168, 112, 5)])],
}


def generate(model, inputs, **kw):
    with torch.no_grad():
        return model.generate(
            **inputs, max_new_tokens=NEW, do_sample=False, output_logits=True, return_dict_in_generate=True, **kw
        )


def test_can_be_applied_again_after_removal(models):
    model = models()
    erase.apply(model, tiny_profile(model)).remove()
    with erase.apply(model, tiny_profile(model)):  # can be applied again after removal
        with pytest.raises(EraseError, match="already applied"):
            erase.apply(model, tiny_profile(model))


def test_refuses_other_architecture_and_bad_layers(models):
    model = models()
    with pytest.raises(ProfileError, match="calibrated for Qwen/Qwen2.5-VL-7B-Instruct.*allow_transfer"):
        erase.apply(model, "qwen2.5-vl-7b")
    deep = tiny_profile(model)
    deep = deep.replace(model=deep.model.__class__(id="x", fingerprint=deep.model.fingerprint.__class__("qwen2_5_vl", 28, 40, 64)),
                        stage2=deep.stage2.__class__(early_layer=1, late_layer=30, early_levels=(3, 4), final_keep_ratio=0.25))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ProfileError, match="late_layer = 30 is beyond the model's depth"):
            erase.apply(model, deep, allow_transfer=True)
    other = tiny_profile(model)
    other = other.replace(model=other.model.__class__(id="other", fingerprint=other.model.fingerprint.__class__("internvl", 28, 4, 64)))
    with pytest.raises(ProfileError, match="family internvl vs qwen2_5_vl"):
        erase.apply(model, other)
    with pytest.warns(UserWarning, match="zero-shot"):
        erase.apply(model, other, allow_transfer=True).remove()
    with pytest.raises(EraseError, match="final_keep_ratio"):
        erase.apply(model, tiny_profile(model), final_keep_ratio=0.0)
    with pytest.raises(EraseError, match="no adapter"):
        erase.apply(torch.nn.Linear(2, 2), tiny_profile(model))


STRATEGIES = {
    "stage1_only": (erase.Strategy(stage2=False), True),
    "fastv": (erase.Strategy(stage1="none", stage2_layer=1, evict=False), False),
    "random_stage1": (erase.Strategy(stage1="random", stage1_keep_ratio=0.5, stage2=False, seed=3), True),
    "uniform_then_stage2": (erase.Strategy(stage1="uniform", stage1_keep_ratio=0.6), True),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategies_equal_masked_reference(processor, models, name):
    strategy, evicted = STRATEGIES[name]
    model = models("eager")
    inputs = batch(processor, PROMPTS["batch3"])
    with erase.apply(model, tiny_profile(model), strategy=strategy) as handle:
        out = generate(model, inputs)
        stats = handle.stats
    ref = masked_reference_logits(model, inputs, out.sequences, stats, NEW, evicted=evicted)
    assert (torch.stack(out.logits, dim=1) - ref).abs().max().item() <= 1e-5
    for s in stats:
        for st in s:
            if strategy.stage1_keep_ratio is not None:
                assert st.tokens_after_stage1 == int(st.tokens_total * strategy.stage1_keep_ratio)
            if strategy.stage1 == "none":
                assert st.tokens_after_stage1 == st.tokens_total
            if not strategy.stage2:
                assert st.layer is None and st.tokens_after_stage2 == st.tokens_after_stage1
            if strategy.stage2_layer is not None:
                assert st.layer == strategy.stage2_layer
            if not strategy.evict:
                assert st.kv_evicted == 0


def test_fastv_keeps_early_layers_cache(processor, models):
    model = models()
    inputs = batch(processor, PROMPTS["one"])
    with erase.apply(model, tiny_profile(model), strategy=STRATEGIES["fastv"][0]):
        out = generate(model, inputs)
    lengths = [layer.keys.shape[2] for layer in out.past_key_values.layers]
    full = inputs["input_ids"].shape[1] + NEW - 1
    assert lengths[:2] == [full, full] and all(n < full for n in lengths[2:])


def test_random_stage1_is_seeded(processor, models):
    model = models()
    inputs = batch(processor, PROMPTS["one"])
    kept = []
    for seed in (1, 1, 2):
        strategy = erase.Strategy(stage1="random", stage1_keep_ratio=0.5, stage2=False, seed=seed)
        with erase.apply(model, tiny_profile(model), strategy=strategy) as handle:
            generate(model, inputs)
            kept.append(handle.stats[0][0].kept_stage1.tolist())
    assert kept[0] == kept[1] != kept[2]


def test_foreign_normalisation_is_refused(processor, models):
    model = models()
    inputs = batch(processor, PROMPTS["one"])
    inputs["pixel_values"] = inputs["pixel_values"] * 0.5 + 0.1  # not CLIP-normalised 8-bit pixels
    with erase.apply(model, tiny_profile(model)):
        with pytest.raises(EraseError, match="do not invert to 8-bit pixels"):
            generate(model, inputs)


def test_pixel_site_is_exact_for_windows_kept_whole(processor):
    from transformers import Qwen2_5_VLForConditionalGeneration
    from tiny_qwen import build_tiny_config

    config = build_tiny_config(processor.tokenizer)
    config.vision_config.fullatt_block_indexes = []  # window attention only: windows are independent
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    inputs = batch(processor, PROMPTS["batch3"])
    base = vision_output(model, inputs)[0]
    with erase.apply(model, tiny_profile(model), stage1_site="pixels") as handle:
        pruned = vision_output(model, inputs)[0]
        stats = handle.stats
    offset, whole_windows, partial = 0, 0, 0
    for s in stats:
        st = s[0]
        rows, cols = st.grid
        kept = torch.zeros(rows * cols, dtype=torch.bool)
        kept[torch.as_tensor(st.kept_stage1)] = True
        grid = kept.view(rows, cols)
        for r0 in range(0, rows, 4):  # 112 px windows = 4x4 tokens
            for c0 in range(0, cols, 4):
                win = torch.zeros(rows, cols, dtype=torch.bool)
                win[r0 : r0 + 4, c0 : c0 + 4] = True
                idx = torch.nonzero(win.flatten()).flatten() + offset
                if grid[win].all():
                    whole_windows += 1
                    assert (pruned[idx] - base[idx]).abs().max().item() <= 1e-5
                elif grid[win].any():
                    partial += 1
        dropped = torch.nonzero(~kept).flatten() + offset
        assert torch.all(pruned[dropped] == 0)
        offset += rows * cols
    assert whole_windows > 0 and partial > 0


def test_pixel_site_keeps_the_same_tokens_and_generates(processor, models):
    model = models()
    inputs = batch(processor, PROMPTS["batch3"])
    with erase.apply(model, tiny_profile(model)) as h1:
        generate(model, inputs)
    with erase.apply(model, tiny_profile(model), stage1_site="pixels") as h2:
        out = generate(model, inputs)
    for a, b in zip(h1.stats, h2.stats):
        assert [x.kept_stage1.tolist() for x in a] == [x.kept_stage1.tolist() for x in b]
        assert [x.tokens_after_stage2 for x in a] == [x.tokens_after_stage2 for x in b]
    assert out.sequences.shape[1] == inputs["input_ids"].shape[1] + NEW
    with pytest.raises(EraseError, match="stage1_site"):
        erase.apply(model, tiny_profile(model), stage1_site="vit")
