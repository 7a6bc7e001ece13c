"""Recovering the resized image from the processor's normalised `pixel_values`.

Stage 1 needs the pixels of the image as the processor resized it. The
processors only rescale by 1/255 and normalise with a per-channel mean and
std; inverting that in float32 and rounding is exact for 8-bit images (the
error is about 1e-4 of a grey level), so the runtime never runs the processor
twice. The inversion runs with torch where the tensor lives (on the GPU for a
GPU model) and only the uint8 image comes back to the host. Two layouts are read back:

- Qwen-style patchified rows (`unpatchify`): rows of (channel, temporal,
  patch, patch) values, ordered by spatial-merge group;
- plain channel-first tiles (`tiles_to_uint8`), as InternVL's processor crops
  them.

The statistics a processor used are not in `pixel_values`; an adapter names
its family's (`mean`, `std`) and the known alternatives are tried after it, so
a checkpoint whose processor normalises differently still reads back exactly.

Stage 1 itself needs only gray levels per token, never the image: a Qwen token's
pixels are consecutive `pixel_values` rows (one spatial-merge group), so
`token_entropy` scores the rows where they are. On CPU the C kernel de-normalises,
rounds, converts to gray and histograms in one pass over the float32 rows; elsewhere
(CUDA) torch does the same on the tensor's device (`token_gray`, then
`token_entropy_torch`: a bincount histogram and the kernel's exact summation order),
and only one float64 per token comes back to the host. Both give the entropies of
the processor's resized image bit for bit.
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from typing import Any

import numpy as np
import torch

from . import stage1
from .errors import EraseError

# Normalisation statistics of the released processors.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # Qwen2-VL / Qwen2.5-VL
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # InternVL
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)  # Qwen3-VL: mean and std 0.5
KNOWN_STATS: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = (
    (CLIP_MEAN, CLIP_STD),
    (IMAGENET_MEAN, IMAGENET_STD),
    (HALF, HALF),
)


@functools.lru_cache(maxsize=1)
def _warn_inexact() -> None:
    warnings.warn(
        "pixel_values are in reduced precision; Stage 1 entropy is approximate. "
        "Keep the processor's float32 pixel_values for exact scores.",
        stacklevel=4,
    )


def _as_float32(values: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, bool]:
    """float32 tensor (same device), and whether the source held the processor's exact values."""
    if isinstance(values, torch.Tensor):
        return values.detach().float(), values.dtype in (torch.float32, torch.float64)
    arr = np.asarray(values)
    return torch.from_numpy(arr).float(), arr.dtype in (np.float32, np.float64)


_CHECK_ROWS = 4096  # leading rows that decide which statistics invert to integers


def denormalize(
    x: torch.Tensor,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    exact: bool = True,
    rescale_factor: float = 1 / 255,
    channel_dim: int = -1,
) -> torch.Tensor:
    """Normalised values -> uint8 tensor (same shape), with (mean, std) or a known alternative.

    Which statistics apply is decided on the leading rows (enough values to tell
    them apart with certainty); the whole tensor is then converted in one pass.
    """
    x = torch.as_tensor(x).float()
    shape = [1] * x.dim()
    shape[channel_dim] = -1

    def invert(t: torch.Tensor, m: tuple[float, ...], s: tuple[float, ...]) -> torch.Tensor:
        scale = torch.tensor(s, dtype=torch.float32, device=t.device).view(shape) / rescale_factor
        shift = torch.tensor(m, dtype=torch.float32, device=t.device).view(shape) / rescale_factor
        return torch.addcmul(shift, t, scale)

    def to_uint8(m: tuple[float, ...], s: tuple[float, ...]) -> torch.Tensor:
        return invert(x, m, s).round_().clamp_(0, 255).to(torch.uint8)

    if not exact:  # rounding cannot tell the statistics apart: trust the adapter's
        _warn_inexact()
        return to_uint8(tuple(mean), tuple(std))
    head = x[:_CHECK_ROWS]
    tried = [(tuple(mean), tuple(std))] + [st for st in KNOWN_STATS if st != (tuple(mean), tuple(std))]
    for m, s in tried:
        v = invert(head, m, s)
        if not v.numel():
            return to_uint8(m, s)
        rounded = v.round()
        # 8-bit pixels come back within ~1e-3 of an integer; other statistics do not.
        if (v - rounded).abs().max() <= 0.05 and rounded.min() >= -1 and rounded.max() <= 256:
            if head.shape[0] == x.shape[0]:  # the check already converted every row: reuse it
                return rounded.clamp_(0, 255).to(torch.uint8)
            return to_uint8(m, s)
    raise EraseError(
        "pixel_values do not invert to 8-bit pixels with image mean "
        f"{tuple(round(m, 4) for m in mean)} and std {tuple(round(s, 4) for s in std)} "
        "(nor with the other known processor statistics); "
        "the processor normalised differently (set the adapter's image_mean / image_std)"
    )


def unpatchify(
    rows: torch.Tensor | np.ndarray,
    grid_hw: tuple[int, int],
    *,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    rescale_factor: float = 1 / 255,
) -> np.ndarray:
    """One image's Qwen-style `pixel_values` rows -> HxWx3 uint8, H = grid_h * patch_size."""
    gh, gw = grid_hw
    rows, exact = _as_float32(rows)
    channels = rows.shape[1] // (temporal_patch_size * patch_size * patch_size)
    m, p = merge_size, patch_size
    # the temporal copies are identical for an image: convert the first, then rearrange bytes
    first = rows.view(rows.shape[0], channels, temporal_patch_size, p, p)[:, :, 0]
    u8 = denormalize(first, mean=mean, std=std, exact=exact, rescale_factor=rescale_factor, channel_dim=1)
    # (bh, bw, mh, mw, c, ph, pw) -> (bh, mh, ph, bw, mw, pw, c)
    u8 = u8.reshape(gh // m, gw // m, m, m, channels, p, p).permute(0, 2, 5, 1, 3, 6, 4)
    return u8.reshape(gh * p, gw * p, channels).cpu().numpy()


def tiles_to_uint8(
    tiles: torch.Tensor | np.ndarray,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    rescale_factor: float = 1 / 255,
) -> np.ndarray:
    """[N, C, S, S] channel-first normalised tiles -> [N, S, S, C] uint8."""
    x, exact = _as_float32(tiles)
    u8 = denormalize(x, mean=mean, std=std, exact=exact, rescale_factor=rescale_factor, channel_dim=1)
    return u8.permute(0, 2, 3, 1).contiguous().cpu().numpy()


# ---------------------------------------------------------------- Stage 1 straight from pixel_values
_TOL = 0.05  # 8-bit pixels come back within ~1e-4 of an integer; other statistics miss by far more


def _candidates(mean: tuple[float, ...], std: tuple[float, ...]) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    first = (tuple(mean), tuple(std))
    return [first] + [st for st in KNOWN_STATS if st != first]


def _no_inverse(mean: tuple[float, ...], std: tuple[float, ...]) -> EraseError:
    return EraseError(
        "pixel_values do not invert to 8-bit pixels with image mean "
        f"{tuple(round(m, 4) for m in mean)} and std {tuple(round(s, 4) for s in std)} "
        "(nor with the other known processor statistics); "
        "the processor normalised differently (set the adapter's image_mean / image_std)"
    )


def _affine(m: tuple[float, ...], s: tuple[float, ...], rescale_factor: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(scale, shift) in float32, as `denormalize` computes them: pixel = x * scale + shift."""
    scale = (torch.tensor(s, dtype=torch.float32) / rescale_factor).tolist()
    shift = (torch.tensor(m, dtype=torch.float32) / rescale_factor).tolist()
    return tuple(scale), tuple(shift)


def _gray_of(
    x: torch.Tensor, m: tuple[float, ...], s: tuple[float, ...], rescale_factor: float, bias: int, channel_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gray levels (uint8, channel dim dropped) and whether every value inverted to an 8-bit pixel."""
    shape = [1] * x.dim()
    shape[channel_dim] = -1
    scale, shift = _affine(m, s, rescale_factor)
    v = torch.addcmul(
        torch.tensor(shift, device=x.device).view(shape), x, torch.tensor(scale, device=x.device).view(shape)
    )
    q = v.clamp(0, 255).round_()  # NaN stays NaN and fails the check below
    exact = ((v - q).abs() <= _TOL).all()
    q = q.nan_to_num_(0).to(torch.int32)
    channels = q.unbind(channel_dim)
    if len(channels) == 1:
        gray = channels[0]
    else:
        r, g, b = channels
        gray = (r * 299 + g * 587 + b * 114 + bias) // 1000
    return gray.to(torch.uint8), exact


def gray_levels(
    x: torch.Tensor | np.ndarray,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    rounding: str = "floor",
    rescale_factor: float = 1 / 255,
    channel_dim: int = -1,
) -> torch.Tensor:
    """Normalised values -> uint8 gray levels on the tensor's device (the channel dim dropped).

    Each value is inverted to the 8-bit pixel the processor started from (with
    (mean, std) or, failing that, a known alternative; every value is checked),
    then binned as `stage1.grayscale` does. Reduced-precision inputs trust the
    given statistics and warn.
    """
    t, exact_dtype = _as_float32(x)
    bias = stage1.ROUNDING_BIAS[rounding]
    if not exact_dtype:
        _warn_inexact()
        return _gray_of(t, tuple(mean), tuple(std), rescale_factor, bias, channel_dim)[0]
    for m, s in _candidates(mean, std):
        gray, exact = _gray_of(t, m, s, rescale_factor, bias, channel_dim)
        if bool(exact):
            return gray
    raise _no_inverse(mean, std)


def token_gray(
    rows: torch.Tensor | np.ndarray,
    *,
    merge_size: int,
    temporal_patch_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    rounding: str = "floor",
    rescale_factor: float = 1 / 255,
) -> torch.Tensor:
    """One image's Qwen-style rows -> [tokens, pixels per token] uint8 gray, on the rows' device.

    Token t's pixels are rows t*m^2 .. t*m^2 + m^2 - 1 (first temporal frame); their order
    inside a token does not matter to a histogram.
    """
    t, _ = _as_float32(rows)
    unit = merge_size * merge_size
    channels = 3 if t.shape[1] % (3 * temporal_patch_size) == 0 else 1
    plane = t.shape[1] // (channels * temporal_patch_size)
    first = t.view(t.shape[0], channels, temporal_patch_size, plane)[:, :, 0]
    if not _exact_dtype(rows):  # gray_levels would see float32 and check: trust the statistics instead
        _warn_inexact()
        gray = _gray_of(first, tuple(mean), tuple(std), rescale_factor, stage1.ROUNDING_BIAS[rounding], 1)[0]
    else:
        gray = gray_levels(first, mean=mean, std=std, rounding=rounding, rescale_factor=rescale_factor, channel_dim=1)
    return gray.reshape(t.shape[0] // unit, unit * plane)


def _exact_dtype(values: torch.Tensor | np.ndarray) -> bool:
    if isinstance(values, torch.Tensor):
        return values.dtype in (torch.float32, torch.float64)
    return np.asarray(values).dtype in (np.float32, np.float64)


def token_entropy_torch(gray: torch.Tensor) -> torch.Tensor:
    """[tokens, n] uint8 gray -> [tokens] float64 entropies (nats), on gray's device.

    Equal bit for bit to the C kernel and `stage1.patch_entropy`: the same c ln c
    table, and S summed in the kernel's order (two halves of 128 bins, 8 running
    sums each, combined pairwise); divisions by a tensor, never by a scalar (CUDA
    would multiply by its reciprocal).
    """
    tokens, n = gray.shape
    dev = gray.device
    keys = gray.to(torch.int64) + torch.arange(tokens, device=dev)[:, None] * 256
    counts = torch.bincount(keys.flatten(), minlength=tokens * 256).view(tokens, 256)
    terms = torch.from_numpy(stage1._clnc_table(n)).to(dev)[counts].view(tokens, 2, 16, 8)
    acc = terms[:, :, 0].clone()
    for j in range(1, 16):
        acc += terms[:, :, j]
    r = acc.unbind(-1)
    halves = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    total = halves[:, 0] + halves[:, 1]
    return torch.full_like(total, math.log(n)) - total / torch.full_like(total, float(n))


def token_entropy(
    rows: torch.Tensor | np.ndarray,
    grid_hw: tuple[int, int],
    *,
    merge_size: int,
    temporal_patch_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    rounding: str = "floor",
    rescale_factor: float = 1 / 255,
) -> np.ndarray:
    """One image's Qwen-style rows -> (grid_h / m) x (grid_w / m) patch entropies (float64, host).

    The same values as `stage1.patch_entropy_rgb(unpatchify(rows, ...), m * patch, rounding)`.
    """
    gh, gw = grid_hw
    m = merge_size
    shape = (gh // m, gw // m)
    unit = m * m
    if isinstance(rows, np.ndarray):
        rows = torch.from_numpy(rows)
    if rows.shape[0] != gh * gw or rows.shape[0] % unit:
        raise EraseError(f"pixel_values hold {rows.shape[0]} rows for an image of {gh}x{gw} patches")
    if rows.device.type == "cpu" and _exact_dtype(rows) and stage1.kernel_available() and rows.shape[1] % (3 * temporal_patch_size) == 0:
        return _token_entropy_kernel(rows, shape, unit, temporal_patch_size, mean, std, rounding, rescale_factor)
    kw = dict(merge_size=m, temporal_patch_size=temporal_patch_size, mean=mean, std=std, rounding=rounding,
              rescale_factor=rescale_factor)
    if rows.device.type != "cpu":
        return _token_entropy_on_device(rows, shape, **kw)
    gray = token_gray(rows, **kw)  # no kernel (or reduced precision): numpy's histograms on the same pixels
    side = math.isqrt(gray.shape[1])
    return stage1.patch_entropy(gray.numpy().reshape(-1, side), side).reshape(shape)


def _token_entropy_on_device(rows: torch.Tensor, shape: tuple[int, int], **kw: Any) -> np.ndarray:
    """What CUDA runs: gray and entropies on the rows' device, one float64 per token to the host.
    (Nothing in it is CUDA-specific, so the tests run it on CPU tensors.)"""
    return token_entropy_torch(token_gray(rows, **kw)).cpu().numpy().reshape(shape)


def _token_entropy_kernel(rows, shape, unit, temporal, mean, std, rounding, rescale_factor) -> np.ndarray:
    x = rows.detach().contiguous().float().numpy()
    plane = x.shape[1] // (3 * temporal)
    tokens = x.shape[0] // unit
    out = np.empty(tokens)
    table = stage1._clnc_table(unit * plane)
    for m, s in _candidates(mean, std):
        scale, shift = _affine(m, s, rescale_factor)
        bad = stage1._entropy_kernel.patch_entropy_rows(
            x, tokens, unit, x.shape[1], temporal * plane, plane, scale, shift, out, table,
            stage1.ROUNDING_BIAS[rounding], _TOL,
        )
        if not bad:
            return out.reshape(shape)
    raise _no_inverse(mean, std)


def gray_image_entropy(gray: torch.Tensor, token_px: int) -> np.ndarray:
    """HxW uint8 gray (any device) -> (H / token_px) x (W / token_px) patch entropies on the host.

    On CPU the C kernel (or numpy) scores it; elsewhere each patch's pixels are
    gathered on the device and `token_entropy_torch` scores them there.
    """
    if gray.device.type == "cpu":
        return stage1.patch_entropy_rgb(gray.numpy(), token_px)
    return _gray_image_entropy_on_device(gray, token_px)


def _gray_image_entropy_on_device(gray: torch.Tensor, token_px: int) -> np.ndarray:
    """What CUDA runs for a gray image (tested on CPU tensors)."""
    h, w = gray.shape
    rows, cols = h // token_px, w // token_px
    tokens = gray.reshape(rows, token_px, cols, token_px).permute(0, 2, 1, 3).reshape(rows * cols, -1)
    return token_entropy_torch(tokens).cpu().numpy().reshape(rows, cols)


def content_key(pixels: torch.Tensor) -> int:
    """A 63-bit key of one image's processor pixels: its shape and up to 4,096 evenly spaced values.

    It seeds per-image random draws (the random baseline), so an image gets the same draw alone or
    at any position of a batch. Two images that share a key share a draw, nothing worse.
    """
    flat = pixels.detach().reshape(-1)
    step = max(1, flat.numel() // 4096)
    sample = flat[::step][:4096].to(torch.float32).cpu().numpy()
    digest = hashlib.blake2b(repr(tuple(pixels.shape)).encode() + sample.tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
