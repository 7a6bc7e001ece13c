"""What is specific to the Qwen3-VL and InternVL adapters (the shared suite is test_runtime_conformance.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import DynamicCache

import erase
from erase import EraseError
from erase.adapters.qwen3_vl import Qwen3VLAdapter
from erase.pixels import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, tiles_to_uint8, unpatchify
from erase.testing import keep_all_profile, masked_reference_logits, simple_image, tiny_profile, vision_output
from tiny_models import build_internvl_processor, build_qwen3_processor, build_tiny_internvl, build_tiny_qwen3vl
from tiny_qwen import build_processor, build_tiny_qwen25vl, make_image, make_messages

NEW = 4
PROMPTS = [
    (make_messages("Describe the image."), [make_image(224, 224, 1)]),
    (make_messages("Compare the two images.", n_images=2), [simple_image(112, 112, 4), make_image(168, 112, 5)]),
]


def batch(processor, prompts):
    texts = [processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m, _ in prompts]
    return dict(processor(text=texts, images=[im for _, ims in prompts for im in ims], padding=True, return_tensors="pt"))


def generate(model, inputs, new=NEW):
    with torch.no_grad():
        return model.generate(
            **inputs, max_new_tokens=new, do_sample=False, output_logits=True, return_dict_in_generate=True
        )


@pytest.fixture(scope="module")
def qwen3():
    processor = build_qwen3_processor()
    return processor, build_tiny_qwen3vl(processor.tokenizer), batch(processor, PROMPTS)


@pytest.fixture(scope="module")
def internvl():
    processor = build_internvl_processor()
    return processor, build_tiny_internvl(processor.tokenizer), batch(processor, PROMPTS)


# ---------------------------------------------------------------- Qwen3-VL deep-stack
def test_qwen3_deepstack_features_are_added_by_the_adapter(qwen3, monkeypatch):
    _, model, inputs = qwen3
    assert Qwen3VLAdapter(model).deepstack_layers == 3
    base = generate(model, inputs)
    monkeypatch.setattr(Qwen3VLAdapter, "layer_output", lambda self, *a: None)  # the features would be lost
    with erase.apply(model, keep_all_profile(model)):
        without = generate(model, inputs)
    assert any(not torch.equal(a, b) for a, b in zip(without.logits, base.logits))


@pytest.mark.parametrize("layer", [0, 3])
def test_qwen3_stage2_inside_and_after_the_deepstack_layers(qwen3, layer):
    """Layer 0: the features of later deep-stack layers follow the pruned layout; 3: the paper's early layer."""
    _, model, inputs = qwen3
    with erase.apply(model, tiny_profile(model), strategy=erase.Strategy(stage2_layer=layer)) as handle:
        out = generate(model, inputs)
        stats = handle.stats
    assert {st.layer for s in stats for st in s} == {layer}
    ref = masked_reference_logits(model, inputs, out.sequences, stats, NEW)
    assert (torch.stack(out.logits, dim=1) - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_pixel_site_keeping_everything_is_identical(family):
    if family == "qwen3_vl":
        processor = build_qwen3_processor()
        model = build_tiny_qwen3vl(processor.tokenizer)
    else:
        processor = build_processor()
        model = build_tiny_qwen25vl(tokenizer=processor.tokenizer)
    inputs = batch(processor, PROMPTS)
    base = generate(model, inputs)
    with erase.apply(model, keep_all_profile(model), stage1_site="pixels"):
        out = generate(model, inputs)
    assert torch.equal(out.sequences, base.sequences)
    for a, b in zip(out.logits, base.logits):
        assert torch.equal(a, b)


def test_qwen3_pixel_site_drops_patches_and_their_deepstack_features(qwen3):
    _, model, inputs = qwen3
    with erase.apply(model, tiny_profile(model)) as h1:
        generate(model, inputs, new=1)
    with erase.apply(model, tiny_profile(model), stage1_site="pixels") as h2:
        pooled, deepstack = vision_output(model, inputs)
        out = generate(model, inputs)
    offset = 0
    for a, b in zip(h1.stats, h2.stats):
        assert [x.kept_stage1.tolist() for x in a] == [x.kept_stage1.tolist() for x in b]
        for st in b:
            dropped = torch.as_tensor(np.setdiff1d(np.arange(st.tokens_total), st.kept_stage1) + offset)
            assert torch.all(pooled[dropped] == 0) and len(deepstack) == 3
            assert all(torch.all(f[dropped] == 0) for f in deepstack)
            offset += st.tokens_total
    assert out.sequences.shape[1] == inputs["input_ids"].shape[1] + NEW


# ---------------------------------------------------------------- InternVL tiles
def test_internvl_token_covers_a_28px_region_through_the_pixel_shuffle(internvl):
    """Token t of a tile is the 2x2 group of 14 px patches at row t // 4, column t % 4 (112 px tiles)."""
    _, model, _ = internvl
    side = 112 // 14
    code = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij"), -1).reshape(1, -1, 2)
    seen = []

    def encode_positions(module, args, output):  # patch (i, j) -> features (i, j, 0, ...); CLS first
        hidden = torch.zeros_like(output.last_hidden_state)
        hidden[:, 1:, :2] = code.to(hidden.dtype)
        output.last_hidden_state = hidden
        return output

    hooks = [
        model.model.vision_tower.register_forward_hook(encode_positions),
        model.model.multi_modal_projector.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone())),
    ]
    try:
        with torch.no_grad():
            model.model.get_image_features(pixel_values=torch.zeros(1, 3, 112, 112))
    finally:
        for h in hooks:
            h.remove()
    (shuffled,) = seen  # [1, 16 tokens, 4 patches x 32 channels]
    groups = shuffled[0].reshape(16, 4, -1)[..., :2]
    for t in range(16):
        r, c = divmod(t, 4)
        assert {tuple(p) for p in groups[t].long().tolist()} == {(2 * r + a, 2 * c + b) for a in (0, 1) for b in (0, 1)}


def test_internvl_pools_every_tile_and_the_thumbnail(internvl):
    processor, model, inputs = internvl
    tiles = processor.image_processor(images=[im for _, ims in PROMPTS for im in ims])["num_patches"]
    with erase.apply(model, tiny_profile(model)) as handle:
        generate(model, inputs, new=1)
    stats = [st for s in handle.stats for st in s]
    assert [st.grid for st in stats] == [(4 * n, 4) for n in tiles]
    assert tiles[0] > 1  # several tiles and the thumbnail, ranked together
    kept_tiles = {int(i) // 16 for i in stats[0].kept_stage1}
    assert len(kept_tiles) > 1


def test_internvl_refuses_the_pixel_site(internvl):
    _, model, _ = internvl
    with pytest.raises(EraseError, match="stage1_site='pixels' is not supported for InternVLForConditionalGeneration"):
        erase.apply(model, tiny_profile(model), stage1_site="pixels")


# ---------------------------------------------------------------- reading pixels back
def test_pixels_read_back_with_other_processor_statistics():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (2, 3, 28, 28)).astype(np.float64)
    normalised = (img / 255 - np.asarray(IMAGENET_MEAN)[:, None, None]) / np.asarray(IMAGENET_STD)[:, None, None]
    # an adapter that expects CLIP statistics still reads ImageNet-normalised tiles exactly
    back = tiles_to_uint8(torch.tensor(normalised, dtype=torch.float32), mean=CLIP_MEAN, std=CLIP_STD)
    assert np.array_equal(back, img.transpose(0, 2, 3, 1).astype(np.uint8))
    with pytest.raises(EraseError, match="do not invert to 8-bit pixels"):
        unpatchify(np.full((4, 3 * 2 * 14 * 14), 0.123), (2, 2), patch_size=14, merge_size=2, temporal_patch_size=2,
                   mean=CLIP_MEAN, std=CLIP_STD)


# ---------------------------------------------------------------- a cache ERASE did not fill
@pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated")  # the name 5.17 knows
@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "internvl"])
def test_images_after_a_reused_prefix_cache_are_refused(family, qwen3, internvl):
    """generate() with a prompt-prefix cache sends the images in a call whose cache is already
    filled: unhandled, the model ran them unpruned while ERASE looked applied."""
    if family == "qwen2_5_vl":
        processor = build_processor()
        model = build_tiny_qwen25vl(tokenizer=processor.tokenizer)
    else:
        processor, model, _ = qwen3 if family == "qwen3_vl" else internvl
    inputs = batch(processor, PROMPTS[:1])
    prefix = 3  # text before the first image token
    assert inputs["input_ids"].shape[1] > prefix
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        erase.adapters.adapter_for(model).text_model()(input_ids=inputs["input_ids"][:, :prefix], past_key_values=cache, use_cache=True)
    assert cache.get_seq_length() == prefix
    with erase.apply(model, tiny_profile(model)) as handle:
        with pytest.raises(EraseError, match="continues a KV cache it did not fill"):
            with torch.no_grad():
                model.generate(**inputs, past_key_values=cache, max_new_tokens=2, do_sample=False)
        assert handle.stats == []


# ---------------------------------------------------------------- the random baseline
def _random_kept(model, processor, prompts, site="embeddings"):
    with erase.apply(model, tiny_profile(model), strategy="random", final_keep_ratio=0.4, stage1_site=site) as handle:
        with torch.no_grad():
            model(**batch(processor, prompts))
        return [st.kept_stage1.tolist() for sample in handle.stats for st in sample]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "internvl", "qwen2_5_vl-pixels"])
def test_random_draw_follows_the_image_not_its_batch_position(family, qwen3, internvl):
    """A batch equals its samples one by one: each image's random draw is seeded by its pixels."""
    if family.startswith("qwen2_5_vl"):
        processor = build_processor()
        model = build_tiny_qwen25vl(tokenizer=processor.tokenizer)
    else:
        processor, model, _ = qwen3 if family == "qwen3_vl" else internvl
    site = "pixels" if family.endswith("pixels") else "embeddings"
    a, b = make_image(224, 224, 1), make_image(224, 224, 2)  # same size, different content
    one = (make_messages("Describe the image."), [a])
    two = (make_messages("Describe the image."), [b])
    alone_a, alone_b = _random_kept(model, processor, [one], site), _random_kept(model, processor, [two], site)
    assert alone_a != alone_b  # different pixels, different draws
    together = _random_kept(model, processor, [two, one], site)
    assert together == alone_b + alone_a
    twice = _random_kept(model, processor, [one, one], site)
    assert twice == alone_a + alone_a
