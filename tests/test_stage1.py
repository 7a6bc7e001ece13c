"""Stage 1 scoring: entropy per token, global complexity, level and kept tokens."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.measure import shannon_entropy
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize

import erase
from erase import ImageError, stage1
from erase.imaging import resize_for_tokens, smart_resize, to_uint8
from erase.pixels import unpatchify

MIN_PX, MAX_PX = 64 * 28 * 28, 400 * 28 * 28


@pytest.fixture(scope="module")
def profile():
    p = erase.load_profile("qwen2.5-vl-7b")
    return p.replace(image_processing=p.image_processing.__class__(MIN_PX, MAX_PX))


def test_gray_is_exact_integer_formula():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    assert np.array_equal(stage1.grayscale(rgb), ((299 * r + 587 * g + 114 * b) // 1000).astype(np.uint8))
    rounded = stage1.grayscale(rgb, "round")
    assert np.array_equal(rounded, ((299 * r + 587 * g + 114 * b + 500) // 1000).astype(np.uint8))
    grey = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    assert np.array_equal(stage1.grayscale(grey)[0], np.arange(256))  # (v, v, v) -> v, never v - 1


@pytest.mark.parametrize("image", ["astronaut", "coffee", "camera", "text"])
def test_patch_entropy_matches_skimage(image):
    arr = to_uint8(getattr(data, image)())
    arr = arr[: arr.shape[0] // 28 * 28, : arr.shape[1] // 28 * 28]
    gray = stage1.grayscale(arr)
    ours = stage1.patch_entropy(gray, 28)
    assert ours.shape == (gray.shape[0] // 28, gray.shape[1] // 28)
    for i in range(ours.shape[0]):
        for j in range(ours.shape[1]):
            ref = shannon_entropy(gray[i * 28 : (i + 1) * 28, j * 28 : (j + 1) * 28], base=math.e)
            assert ours[i, j] == pytest.approx(ref, abs=1e-12)


def test_entropy_bounds():
    flat = np.full((56, 56), 7, np.uint8)
    assert np.all(stage1.patch_entropy(flat, 28) == 0)
    # every grey level equally often in a 32x32 patch: the maximum, ln 256
    full = np.tile(np.arange(256, dtype=np.uint8), 4).reshape(32, 32)
    assert stage1.patch_entropy(full, 32)[0, 0] == pytest.approx(math.log(256))


def test_global_entropy_is_lower_median():
    assert stage1.global_entropy(np.array([[4.0, 1.0], [3.0, 2.0]])) == 2.0
    assert stage1.global_entropy(np.array([5.0, 1.0, 3.0])) == 3.0
    assert stage1.global_entropy(np.array([[0.5]])) == 0.5


def test_top_k_ties_go_to_lower_index_and_come_sorted():
    scores = np.array([[1.0, 3.0, 3.0], [2.0, 3.0, 0.0]])
    assert stage1.top_k(scores, 2).tolist() == [1, 2]
    assert stage1.top_k(scores, 4).tolist() == [1, 2, 3, 4]
    assert stage1.top_k(np.zeros(5), 3).tolist() == [0, 1, 2]


def test_keep_count_floors_exactly():
    assert stage1.keep_count(100, 0.15) == 15
    assert stage1.keep_count(1296, 0.8268) == math.floor(1296 * 0.8268)
    assert stage1.keep_count(7, 1.0) == 7
    assert stage1.keep_count(3, 0.2) == 0


def test_select_keeps_floor_m_r_by_level(profile):
    rng = np.random.default_rng(1)
    pe = rng.random((10, 12)) * 3  # median ~1.5: level 2 under 1.69/1.35/1.17
    res = stage1.select(pe, profile)
    assert res.level == profile.level_of(res.global_entropy)
    ratio = profile.stage1.keep_ratios[res.level - 1]
    assert res.tokens_kept == math.floor(120 * ratio)
    kept = pe.ravel()[res.keep_indices]
    dropped = np.delete(pe.ravel(), res.keep_indices)
    assert kept.min() >= dropped.max()
    assert np.all(np.diff(res.keep_indices) > 0)


def test_keep_ratio_never_below_final_budget(profile):
    pe = np.zeros((10, 10))  # level 4 keeps 40.34%
    assert stage1.select(pe, profile).tokens_kept == 40
    res = stage1.select(pe, profile, final_keep_ratio=0.5)
    assert res.keep_ratio == 0.5 and res.tokens_kept == 50 and res.skip_stage2
    assert not stage1.select(pe, profile, final_keep_ratio=0.15).skip_stage2


def test_smart_resize_matches_the_processor():
    rng = np.random.default_rng(2)
    for _ in range(300):
        h, w = (int(x) for x in rng.integers(10, 5000, 2))
        if max(h, w) / min(h, w) > 200:
            continue
        assert smart_resize(h, w, 28, MIN_PX, MAX_PX) == hf_smart_resize(h, w, 28, MIN_PX, MAX_PX)


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA", "1"])
@pytest.mark.parametrize("size", [(512, 512), (333, 517), (1, 1), (29, 3)])
def test_resize_equals_processor_pixels(mode, size):
    """Our resize reproduces exactly what the processor feeds the model."""
    src = Image.fromarray(data.astronaut()).resize(size).convert(mode)
    proc = Qwen2VLImageProcessorPil(min_pixels=MIN_PX, max_pixels=MAX_PX)
    out = proc(images=[src], return_tensors="pt")
    _, gh, gw = out["image_grid_thw"][0].tolist()
    seen = unpatchify(
        out["pixel_values"], (gh, gw), patch_size=14, merge_size=2, temporal_patch_size=2,
        mean=proc.image_mean, std=proc.image_std,
    )
    ours = resize_for_tokens(to_uint8(src), 28, MIN_PX, MAX_PX)
    # (the RGBA/LA sources are opaque, so the processor's alpha handling and ours agree)
    ours_rgb = ours if ours.ndim == 3 else np.repeat(ours[..., None], 3, axis=2)
    assert np.array_equal(seen, ours_rgb)
    assert np.array_equal(stage1.grayscale(seen), stage1.grayscale(ours))


def test_score_image_on_odd_inputs(profile):
    rgb = data.astronaut()
    expected = erase.stage1.score_image(rgb, profile)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 9, np.uint8)], axis=2)
    assert np.array_equal(erase.stage1.score_image(rgba, profile).keep_indices, expected.keep_indices)
    pal = Image.fromarray(rgb).convert("P")
    assert erase.stage1.score_image(pal, profile).grid == expected.grid
    g16 = (data.camera().astype(np.uint16) * 257)
    assert np.array_equal(
        erase.stage1.score_image(g16, profile).patch_entropy,
        erase.stage1.score_image(data.camera(), profile).patch_entropy,
    )
    tiny = erase.stage1.score_image(np.zeros((1, 1), np.uint8), profile)
    assert tiny.tokens_total >= 64 and tiny.global_entropy == 0.0


def test_sixteen_bit_png_roundtrip(tmp_path, profile):
    path = tmp_path / "g16.png"
    Image.fromarray(data.camera().astype(np.uint16) * 257).save(path)
    im = erase.imaging.open_image(path)
    assert np.array_equal(to_uint8(im), data.camera())


def test_broken_and_impossible_images(tmp_path, profile):
    bad = tmp_path / "broken.png"
    good = tmp_path / "good.png"
    Image.fromarray(data.astronaut()).save(good)
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageError, match="broken.png"):
        erase.imaging.open_image(bad)
    with pytest.raises(ImageError, match="no such image"):
        erase.imaging.open_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="aspect ratio"):
        erase.stage1.score_image(np.zeros((1, 500), np.uint8), profile)
    with pytest.raises(ImageError, match="dtype"):
        erase.stage1.score_image(np.zeros((30, 30), np.float32), profile)
    with pytest.raises(ImageError, match="empty"):
        erase.stage1.score_image(np.zeros((0, 30), np.uint8), profile)
