"""Stage 1 straight from pixel_values: exact 8-bit inversion, and the kernel / torch paths against the old one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from transformers import GotOcr2ImageProcessorPil, Qwen2VLImageProcessorPil

from erase import EraseError, pixels, stage1
from erase.pixels import CLIP_MEAN, CLIP_STD, HALF, IMAGENET_MEAN, IMAGENET_STD

FAMILIES = {"qwen2.5-vl": (CLIP_MEAN, CLIP_STD), "qwen3-vl": (HALF, HALF), "internvl": (IMAGENET_MEAN, IMAGENET_STD)}


def old_unpatchify(rows, grid_hw, *, patch_size, merge_size, temporal_patch_size, mean, std):
    """The runtime's first pixel recovery (commit b0e6a01f), float64 numpy: the oracle."""
    gh, gw = grid_hw
    rows = np.asarray(torch.as_tensor(rows).double().numpy())
    channels = rows.shape[1] // (temporal_patch_size * patch_size * patch_size)
    m, p = merge_size, patch_size
    x = rows.reshape(gh // m, gw // m, m, m, channels, temporal_patch_size, p, p)[:, :, :, :, :, 0]
    x = x.transpose(0, 2, 5, 1, 3, 6, 4).reshape(gh * p, gw * p, channels)
    x = (x * np.asarray(std) + np.asarray(mean)) * 255
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def normalise_ways(v: np.ndarray, mean: float, std: float) -> dict[str, torch.Tensor]:
    """The ways processors compute (v / 255 - mean) / std: numpy in float64 or float32, or fused in float32."""
    v64 = v.astype(np.float64)
    f32 = v.astype(np.float32)
    return {
        "float64 then float32": torch.tensor(((v64 / 255 - mean) / std).astype(np.float32)),
        "float32 rescale then normalise": torch.tensor((f32 * np.float32(1 / 255) - np.float32(mean)) / np.float32(std)),
        "float32 fused": torch.tensor((f32 - np.float32(mean * 255)) / np.float32(std * 255)),
    }


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_8bit_value_inverts_exactly_per_channel(family):
    mean, std = FAMILIES[family]
    v = np.arange(256, dtype=np.uint8)
    for c in range(3):
        for how, x in normalise_ways(v, mean[c], std[c]).items():
            scale, shift = pixels._affine((mean[c],), (std[c],), 1 / 255)
            back = x * scale[0] + shift[0]
            # the margin that makes rounding safe: far below half a level
            assert (back - torch.arange(256)).abs().max() < 1e-3, (family, c, how)
            gray = pixels.gray_levels(x[:, None], mean=(mean[c],), std=(std[c],))
            assert torch.equal(gray, torch.arange(256, dtype=torch.uint8)), (family, c, how)


@pytest.mark.parametrize("rounding", ["floor", "round"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_gray_of_all_values_matches_the_integer_formula(family, rounding):
    """Every (R, G, B) level triple through every normalisation: torch and kernel give stage1.grayscale's gray."""
    mean, std = FAMILIES[family]
    rng = np.random.default_rng(1)
    # each channel runs through all 256 values, against shuffled partners
    rgb = np.stack([rng.permutation(np.tile(np.arange(256, dtype=np.uint8), 49)) for _ in range(3)], axis=1)
    want = stage1.grayscale(rgb[None], rounding)[0]
    for how in normalise_ways(np.arange(1), 0.0, 1.0):
        x = torch.stack([normalise_ways(rgb[:, c], mean[c], std[c])[how] for c in range(3)], dim=1)  # [P, 3]
        assert np.array_equal(pixels.gray_levels(x, mean=mean, std=std, rounding=rounding).numpy(), want)
        # as Qwen rows: 16 tokens of 4 rows of 196 values per channel, both temporal frames equal
        rows = x.T.reshape(3, 64, 196).permute(1, 0, 2)[:, :, None].expand(64, 3, 2, 196).reshape(64, 1176)
        gray = pixels.token_gray(rows, merge_size=2, temporal_patch_size=2, mean=mean, std=std, rounding=rounding)
        assert np.array_equal(gray.numpy().ravel(), want)
        if stage1.kernel_available():
            got = pixels.token_entropy(rows, (8, 8), merge_size=2, temporal_patch_size=2, mean=mean, std=std,
                                       rounding=rounding)
            ref = stage1.patch_entropy(want.reshape(16 * 28, 28), 28).reshape(4, 4)
            assert np.array_equal(got, ref)


def processed(family: str, image: Image.Image):
    """(rows or tiles, grid, patch, mean, std) as the family's processor makes them."""
    mean, std = FAMILIES[family]
    if family == "internvl":
        proc = GotOcr2ImageProcessorPil(crop_to_patches=True, min_patches=1, max_patches=4,
                                        size={"height": 112, "width": 112}, image_mean=list(mean), image_std=list(std))
        out = proc(images=[image], return_tensors="pt")
        return out["pixel_values"], None, 28, mean, std
    patch = 14 if family == "qwen2.5-vl" else 16
    token = 2 * patch
    proc = Qwen2VLImageProcessorPil(patch_size=patch, merge_size=2, temporal_patch_size=2, image_mean=list(mean),
                                    image_std=list(std), min_pixels=4 * token * token, max_pixels=256 * token * token)
    out = proc(images=[image], return_tensors="pt")
    _, gh, gw = out["image_grid_thw"][0].tolist()
    return out["pixel_values"], (gh, gw), patch, mean, std


def images():
    rng = np.random.default_rng(7)
    yield "noise", Image.fromarray(rng.integers(0, 256, (300, 410, 3), dtype=np.uint8))
    yield "astronaut", Image.fromarray(data.astronaut()).resize((333, 250))
    yield "coffee", Image.fromarray(data.coffee())
    flat = np.zeros((200, 200, 3), np.uint8)
    flat[:, 100:] = (255, 128, 0)  # flat regions: many patches with one-bin histograms
    yield "flat", Image.fromarray(flat)


@pytest.mark.parametrize("rounding", ["floor", "round"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_device_paths_equal_the_old_numpy_path(family, rounding, monkeypatch):
    for name, image in images():
        values, grid, patch, mean, std = processed(family, image)
        if family == "internvl":
            n, _, side, _ = values.shape
            rgb = values.double().numpy().transpose(0, 2, 3, 1) * np.asarray(std) + np.asarray(mean)
            old = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8).reshape(n * side, side, 3)
            oracle = stage1.patch_entropy(stage1.grayscale(old, rounding), patch)
            gray = pixels.gray_levels(values, mean=mean, std=std, rounding=rounding, channel_dim=1)
            assert np.array_equal(gray.reshape(n * side, side).numpy(), stage1.grayscale(old, rounding)), name
            got = {"kernel": pixels.gray_image_entropy(gray.reshape(n * side, side), patch)}
            got["device"] = pixels._gray_image_entropy_on_device(gray.reshape(n * side, side), patch)
        else:
            old = old_unpatchify(values, grid, patch_size=patch, merge_size=2, temporal_patch_size=2, mean=mean, std=std)
            oracle = stage1.patch_entropy(stage1.grayscale(old, rounding), 2 * patch)
            kw = dict(merge_size=2, temporal_patch_size=2, mean=mean, std=std, rounding=rounding)
            got = {"kernel": pixels.token_entropy(values, grid, **kw)}
            got["device"] = pixels._token_entropy_on_device(values, oracle.shape, **kw)  # what CUDA runs
            with monkeypatch.context() as mp:
                mp.setenv("ERASE_NO_KERNEL", "1")
                got["numpy"] = pixels.token_entropy(values, grid, **kw)
        for path, entropy in got.items():
            assert entropy.dtype == np.float64 and np.array_equal(entropy, oracle), (family, name, path)


def test_torch_entropy_equals_the_kernel_bit_for_bit():
    rng = np.random.default_rng(3)
    for n_side, levels in [(28, 256), (32, 256), (28, 3), (28, 1), (14, 40)]:
        gray = rng.integers(0, levels, (6 * n_side, 5 * n_side)).astype(np.uint8)
        gray[:n_side, :n_side] = 17  # one flat patch
        want = stage1.patch_entropy(gray, n_side)
        tokens = torch.from_numpy(gray).reshape(6, n_side, 5, n_side).permute(0, 2, 1, 3).reshape(30, -1)
        assert np.array_equal(pixels.token_entropy_torch(tokens).numpy().reshape(6, 5), want)
        assert np.array_equal(pixels.gray_image_entropy(torch.from_numpy(gray), n_side), want)
        assert np.array_equal(pixels._gray_image_entropy_on_device(torch.from_numpy(gray), n_side), want)


def test_rows_of_other_statistics_are_read_back_and_garbage_is_refused(monkeypatch):
    values, grid, _, _, _ = processed("internvl", Image.fromarray(data.astronaut()).resize((112, 112)))
    rows, grid, _, mean, std = processed("qwen2.5-vl", Image.fromarray(data.astronaut()).resize((224, 224)))
    kw = dict(merge_size=2, temporal_patch_size=2, rounding="floor")
    want = pixels.token_entropy(rows, grid, mean=mean, std=std, **kw)
    # an adapter that expects ImageNet statistics still reads CLIP-normalised rows exactly, on both paths
    assert np.array_equal(pixels.token_entropy(rows, grid, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kw), want)
    gray = pixels.token_gray(rows, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kw)
    assert np.array_equal(pixels.token_entropy_torch(gray).numpy().reshape(want.shape), want)
    for bad in (torch.full_like(rows, 0.123), torch.where(torch.arange(rows.numel()).view(rows.shape) == 4 * 1176 + 10, float("nan"), rows)):
        for env in ("0", "1"):
            with monkeypatch.context() as mp:
                mp.setenv("ERASE_NO_KERNEL", env)
                with pytest.raises(EraseError, match="do not invert to 8-bit pixels"):
                    pixels.token_entropy(bad, grid, mean=mean, std=std, **kw)
    with pytest.raises(EraseError, match="pixel_values hold"):
        pixels.token_entropy(rows[:-4], grid, mean=mean, std=std, **kw)


def test_reduced_precision_rows_warn_and_stay_close():
    rows, grid, _, mean, std = processed("qwen2.5-vl", Image.fromarray(data.astronaut()).resize((224, 224)))
    exact = pixels.token_entropy(rows, grid, merge_size=2, temporal_patch_size=2, mean=mean, std=std)
    pixels._warn_inexact.cache_clear()
    with pytest.warns(UserWarning, match="reduced precision"):
        approx = pixels.token_entropy(rows.bfloat16(), grid, merge_size=2, temporal_patch_size=2, mean=mean, std=std)
    assert approx.shape == exact.shape and np.abs(approx - exact).max() < 1.0


@pytest.mark.skipif(not stage1.kernel_available(), reason="C kernel not built")
@pytest.mark.parametrize("patch", [14, 15, 16])  # planes of 196, 225 (the scalar tail), 256 values
def test_kernel_rows_paths_agree_with_the_oracle(patch):
    """The SSE2/scalar and AVX2 loops of the rows kernel, on every pixel value, against the float64 path."""
    rng = np.random.default_rng(patch)
    mean, std = CLIP_MEAN, CLIP_STD
    gh, gw = 6, 8
    img = rng.integers(0, 256, (gh * patch, gw * patch, 3)).astype(np.float64)
    img[:patch * 2, :patch * 2] = 200  # a flat token
    x = (img / 255 - np.asarray(mean)) / np.asarray(std)
    # patchify as the Qwen processors do: rows by merge group, (channel, temporal, patch, patch) per row
    x = x.reshape(gh // 2, 2, patch, gw // 2, 2, patch, 3).transpose(0, 3, 1, 4, 6, 2, 5)
    rows = np.repeat(x[:, :, :, :, :, None], 2, axis=5).reshape(gh * gw, 3 * 2 * patch * patch)
    rows = torch.tensor(rows, dtype=torch.float32)
    old = old_unpatchify(rows, (gh, gw), patch_size=patch, merge_size=2, temporal_patch_size=2, mean=mean, std=std)
    assert np.array_equal(old, img.astype(np.uint8))
    oracle = stage1.patch_entropy(stage1.grayscale(old), 2 * patch)
    kernel = stage1._entropy_kernel
    previous = kernel._set_gray_impl("generic")
    try:
        for impl in ("generic", "auto"):
            kernel._set_gray_impl(impl)
            got = pixels.token_entropy(rows, (gh, gw), merge_size=2, temporal_patch_size=2, mean=mean, std=std)
            assert np.array_equal(got, oracle), impl
            bad = rows.clone()
            bad[5, 3] = float("inf")
            with pytest.raises(EraseError, match="do not invert"):
                pixels.token_entropy(bad, (gh, gw), merge_size=2, temporal_patch_size=2, mean=mean, std=std)
    finally:
        kernel._set_gray_impl("auto" if previous != "generic" else "generic")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (never required by the suite)")
@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl", "internvl"])
def test_cuda_path_equals_the_cpu_path(family):
    for _, image in images():
        values, grid, patch, mean, std = processed(family, image)
        if family == "internvl":
            n, _, side, _ = values.shape
            gray = pixels.gray_levels(values.cuda(), mean=mean, std=std, channel_dim=1)
            assert gray.is_cuda
            got = pixels.gray_image_entropy(gray.reshape(n * side, side), patch)
            want = pixels.gray_image_entropy(pixels.gray_levels(values, mean=mean, std=std, channel_dim=1).reshape(n * side, side), patch)
        else:
            kw = dict(merge_size=2, temporal_patch_size=2, mean=mean, std=std)
            got = pixels.token_entropy(values.cuda(), grid, **kw)
            want = pixels.token_entropy(values, grid, **kw)
        assert np.array_equal(got, want)
