"""Stage 1: image-level entropy scoring and per-level token selection.

Pure stage logic: it sees pixels and a profile, never a model. Token i of the
grid is the token_px x token_px patch at row-major position i of the image as
the processor resized it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from . import _args
from .errors import EraseTypeError, EraseValueError, ImageError
from .imaging import pixel_range, resize_for_tokens, to_uint8
from .profile import Profile

try:  # optional C accelerator (setuptools builds it when a compiler is present)
    from . import _entropy_kernel
except ImportError:  # pragma: no cover - depends on the build
    _entropy_kernel = None

# Integer grayscale: (299 R + 587 G + 114 B + bias) // 1000, identical on every platform. The
# reference truncates a float32 weighted sum, which the floor (bias 0) matches to within 0.0014
# nats of entropy; profiles written before 0.2 were calibrated with rounding (bias 500).
_W = (299, 587, 114)
ROUNDING_BIAS = {"floor": 0, "round": 500}
_STRIP_BUDGET = 1 << 16  # pixels per bincount call: keeps the histogram block in cache


def grayscale(arr: np.ndarray, rounding: str = "floor") -> np.ndarray:
    """HxW uint8 intensities of an HxW or HxWx3 uint8 array (single channel kept as is).

    rounding: "floor" (the reference's binning) or "round", as the profile declares.
    """
    if arr.ndim == 2:
        return arr
    acc = arr[..., 0].astype(np.uint32) * _W[0]
    acc += arr[..., 1].astype(np.uint32) * _W[1]
    acc += arr[..., 2].astype(np.uint32) * _W[2]
    acc += ROUNDING_BIAS[rounding]
    acc //= 1000
    return acc.astype(np.uint8)


def _clnc_table(n: int) -> np.ndarray:
    c = np.arange(n + 1, dtype=np.float64)
    out = np.zeros(n + 1)
    out[1:] = c[1:] * np.log(c[1:])
    return out


def patch_entropy(gray: np.ndarray, token_px: int) -> np.ndarray:
    """Shannon entropy (nats, 256 bins) of every token_px x token_px patch.

    Uses H = ln n - (1/n) * sum_v c_v ln c_v over one bincount per strip of
    patch rows, so each histogram block stays in cache.
    """
    _check_pixels(gray, token_px, channels_ok=False)
    h, w = gray.shape
    if h % token_px or w % token_px:
        raise ImageError(f"image {w}x{h} is not a multiple of the token size {token_px}; resize it first")
    rows, cols = h // token_px, w // token_px
    n = token_px * token_px
    table = _clnc_table(n)
    colkey = (np.arange(w, dtype=np.intp) // token_px) * 256
    out = np.empty((rows, cols))
    strip = max(1, _STRIP_BUDGET // (w * token_px))  # patch rows per call
    key = np.empty((strip * token_px, w), dtype=np.intp)
    for r0 in range(0, rows, strip):
        r1 = min(rows, r0 + strip)
        k = key[: (r1 - r0) * token_px]
        block = gray[r0 * token_px : r1 * token_px]
        np.add(block, colkey, out=k)
        k += (np.arange(r1 - r0, dtype=np.intp) * (cols * 256)).repeat(token_px)[:, None]
        counts = np.bincount(k.ravel(), minlength=(r1 - r0) * cols * 256)
        out[r0:r1] = math.log(n) - table[counts].reshape(r1 - r0, cols, 256).sum(axis=2) / n
    return out


def _check_pixels(arr: Any, token_px: Any, channels_ok: bool) -> None:
    """O(1) checks of the entropy functions' arguments (they also run inside generate())."""
    if isinstance(token_px, bool) or not isinstance(token_px, (int, np.integer)):
        raise EraseTypeError(f"token_px: expected a whole number >= 1, got {_args.type_name(token_px)}")
    if token_px < 1:
        raise EraseValueError(f"token_px must be >= 1, got {token_px}")
    ok = isinstance(arr, np.ndarray) and (arr.ndim == 2 or (channels_ok and arr.ndim == 3 and arr.shape[2] == 3))
    if not ok:
        shape = f" of shape {arr.shape}" if isinstance(arr, np.ndarray) else ""
        raise EraseTypeError(
            f"expected an HxW{' or HxWx3' if channels_ok else ''} uint8 array (see erase.imaging.to_uint8), "
            f"got {_args.type_name(arr)}{shape}"
        )


def kernel_available() -> bool:
    """Whether `patch_entropy_rgb` uses the C kernel (built, and ERASE_NO_KERNEL unset)."""
    return _entropy_kernel is not None and os.environ.get("ERASE_NO_KERNEL", "") in ("", "0")


def patch_entropy_rgb(arr: np.ndarray, token_px: int, rounding: str = "floor") -> np.ndarray:
    """`patch_entropy(grayscale(arr, rounding), token_px)` for an HxW or HxWx3 uint8 array.

    Uses the fused C kernel when it is built (same values, bit for bit, at a
    fraction of the time); ERASE_NO_KERNEL=1 forces the numpy reference path.
    """
    _check_pixels(arr, token_px, channels_ok=True)
    shape_ok = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)
    if not (kernel_available() and arr.dtype == np.uint8 and shape_ok):
        return patch_entropy(grayscale(arr, rounding), token_px)
    h, w = arr.shape[:2]
    if h % token_px or w % token_px:
        raise ImageError(f"image {w}x{h} is not a multiple of the token size {token_px}; resize it first")
    out = np.empty((h // token_px, w // token_px))
    channels = 1 if arr.ndim == 2 else 3
    table = _clnc_table(token_px**2)
    _entropy_kernel.patch_entropy(np.ascontiguousarray(arr), h, w, channels, token_px, out, table, ROUNDING_BIAS[rounding])
    return out


def global_entropy(patch_entropy: np.ndarray) -> float:
    """Image complexity: the median patch entropy, the lower middle value for even counts."""
    flat = np.asarray(patch_entropy, dtype=np.float64).ravel()
    if flat.size == 0:
        raise ImageError("image has no tokens")
    k = (flat.size - 1) // 2
    return float(np.partition(flat, k)[k])


def keep_count(total: int, ratio: float) -> int:
    """floor(total * ratio), robust to ratios like 0.15 that are inexact in binary."""
    return min(total, int(math.floor(total * ratio + 1e-9)))


def final_count(total: int, final_keep_ratio: float) -> int:
    """Tokens an image keeps after Stage 2: floor(total * ratio), but never none of them."""
    return max(1, keep_count(total, final_keep_ratio))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Row-major indices of the k highest scores; ties go to the lower index."""
    flat = np.asarray(scores).ravel()
    order = np.argsort(-flat, kind="stable")[:k]
    return np.sort(order)


@dataclass(frozen=True)
class Stage1Result:
    grid: tuple[int, int]
    patch_entropy: np.ndarray | None  # None when the strategy never needs it (random, uniform, FastV)
    global_entropy: float  # nan when not computed
    level: int
    keep_ratio: float
    keep_indices: np.ndarray
    stage2_layer: int
    skip_stage2: bool
    # per token, the kept token whose slot carries it (itself, or its cluster centre; -1 if dropped),
    # when the scorer merges tokens (erase.merging); None otherwise
    carrier: np.ndarray | None = None

    @property
    def tokens_total(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def tokens_kept(self) -> int:
        return int(self.keep_indices.size)


def select(patch_entropy: np.ndarray, profile: Profile, final_keep_ratio: float | None = None) -> Stage1Result:
    """Level, keep ratio and kept tokens for one image's patch entropies (a rows x cols array)."""
    _check_profile_arg(profile)
    final_keep_ratio = _args.ratio("final_keep_ratio", final_keep_ratio)
    if not isinstance(patch_entropy, np.ndarray) or patch_entropy.ndim != 2:
        raise EraseTypeError(
            f"patch_entropy: expected a 2-D numpy array (rows x cols), got {_args.type_name(patch_entropy)}"
            + (f" of shape {patch_entropy.shape}" if isinstance(patch_entropy, np.ndarray) else "")
        )
    final = profile.stage2.final_keep_ratio if final_keep_ratio is None else final_keep_ratio
    h = global_entropy(patch_entropy)
    level = profile.level_of(h)
    level_ratio = profile.stage1.keep_ratios[level - 1]
    # Stage 1 never prunes below the final budget; reaching it makes Stage 2 moot.
    ratio = max(level_ratio, final)
    total = patch_entropy.size
    keep = top_k(patch_entropy, max(1, keep_count(total, ratio)))
    return Stage1Result(
        grid=(int(patch_entropy.shape[0]), int(patch_entropy.shape[1])),
        patch_entropy=patch_entropy,
        global_entropy=h,
        level=level,
        keep_ratio=ratio,
        keep_indices=keep,
        stage2_layer=profile.stage2_layer(level),
        skip_stage2=keep.size <= final_count(total, final),
    )


def _check_profile_arg(profile: Any) -> None:
    if not isinstance(profile, Profile):
        raise EraseTypeError(
            f"profile: expected an erase.Profile, got {_args.type_name(profile)}"
            + (" (load one with erase.load_profile(name))" if isinstance(profile, (str, os.PathLike)) else "")
        )


def resized(image: Image.Image | np.ndarray, profile: Profile) -> np.ndarray:
    """The image as the profile's processor settings resize it: HxW or HxWx3 uint8."""
    _check_profile_arg(profile)
    tpx = profile.model.fingerprint.pixels_per_token
    lo, hi = pixel_range(tpx, profile.image_processing.min_pixels, profile.image_processing.max_pixels)
    return resize_for_tokens(to_uint8(image), tpx, lo, hi)


def resized_gray(image: Image.Image | np.ndarray, profile: Profile) -> np.ndarray:
    """The image as the profile's processor settings resize it, as uint8 intensities."""
    return grayscale(resized(image, profile), profile.stage1.entropy.grayscale_rounding)


def score_image(
    image: Image.Image | np.ndarray, profile: Profile, final_keep_ratio: float | None = None
) -> Stage1Result:
    """Score a raw image: resize as the processor would, then entropy and selection.

    `image` is a PIL image or a uint8 / uint16 / bool array (HxW, HxWx1, HxWx3, HxWx4);
    floating-point images and images over the limits of `erase.limits` are refused.
    `final_keep_ratio` (None: the profile's) must be in (0, 1].
    """
    _check_profile_arg(profile)
    _args.ratio("final_keep_ratio", final_keep_ratio)
    arr = resized(image, profile)
    px = profile.model.fingerprint.pixels_per_token
    return select(patch_entropy_rgb(arr, px, profile.stage1.entropy.grayscale_rounding), profile, final_keep_ratio)
