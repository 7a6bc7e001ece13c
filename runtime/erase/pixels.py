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
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

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
