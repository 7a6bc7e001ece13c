"""Image input for Stage 1: decoding odd formats and resizing like the processor.

Stage 1 scores the image *as the processor resized it*, so that patch i of the
grid is exactly LLM token i. The resize here reproduces the Qwen processors'
`smart_resize` rule and their PIL bicubic resampling.
"""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import limits
from .errors import EraseTypeError, ImageError
from .limits import MAX_ASPECT_RATIO

FLOAT_RULE = (
    "floating-point images are not supported: ERASE scores 8-bit intensities and does not guess how float "
    "values (their range, NaN, infinities) map to 0..255; convert the image to 8 or 16 bits first"
)


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open and fully decode an image file, or raise a one-line `ImageError`.

    The file must be a regular file (see `erase.limits`); its size and aspect ratio are
    checked on the header before the pixels are decoded, floating-point images are
    refused (`FLOAT_RULE`), and truncated pixel data is an error, not a partly grey image.
    """
    source = os.fspath(path) if isinstance(path, (str, os.PathLike)) else repr(path)
    with limits.open_regular(path, "image", ImageError) as fh:
        try:
            with limits.pil_header_only():
                im = Image.open(fh)
            with im:
                check_image(im, source)
                im.load()
                return im.copy() if im.mode != "P" else im.convert("RGB")
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError(f"{source}: not a readable image (unknown or corrupt format)") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _decode_error(source, exc) from None


def check_image(im: Image.Image, source: str) -> None:
    """Refuse, from the header alone, an image ERASE cannot score: too many pixels, too thin, floating-point."""
    limits.check_image_size(im.width, im.height, source)
    if im.mode.startswith("F"):
        raise ImageError(f"{source}: {FLOAT_RULE} (mode {im.mode})")


def _decode_error(source: str, exc: BaseException) -> ImageError:
    text = str(exc).strip() or type(exc).__name__
    if "truncated" in text or isinstance(exc, EOFError):
        return ImageError(f"{source}: image data is truncated (the file ends before its pixels do)")
    return ImageError(f"{source}: cannot decode image: {text}")


def to_uint8(image: Image.Image | np.ndarray) -> np.ndarray:
    """Return an HxW (single channel) or HxWx3 uint8 array.

    Palette images become RGB, alpha is dropped, 16-bit images are scaled to 0..255,
    booleans to 0 and 255; floating-point images are refused (`FLOAT_RULE`), and so is
    an image over the pixel limit or thinner than 1:200 (`erase.limits`).
    """
    if isinstance(image, Image.Image):
        return _pil_to_uint8(image)
    if not isinstance(image, np.ndarray):
        raise EraseTypeError(
            f"image: expected a PIL.Image.Image or a numpy array, got {type(image).__name__}"
            + (" (open files with erase.imaging.open_image)" if isinstance(image, (str, os.PathLike)) else "")
        )
    arr = image
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] in (2, 4):  # gray+alpha, RGBA
        arr = arr[..., :1] if arr.shape[2] == 2 else arr[..., :3]
        arr = arr[..., 0] if arr.shape[2] == 1 else arr
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ImageError(f"unsupported image array shape {arr.shape}; expected HxW, HxWx1, HxWx3 or HxWx4")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"empty image of shape {arr.shape}")
    limits.check_image_size(int(arr.shape[1]), int(arr.shape[0]), "image array")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return _scale16(arr)
    if np.issubdtype(arr.dtype, np.floating):
        raise ImageError(f"image array of dtype {arr.dtype}: {FLOAT_RULE}")
    raise ImageError(f"unsupported image dtype {arr.dtype}; expected uint8, uint16 or bool")


def _scale16(arr: np.ndarray) -> np.ndarray:
    # round(v * 255 / 65535), exact in integers
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _pil_to_uint8(im: Image.Image) -> np.ndarray:
    if im.width == 0 or im.height == 0:
        raise ImageError(f"empty image of size {im.width}x{im.height}")
    source = getattr(im, "filename", None) or "image"
    check_image(im, source)
    try:
        im.load()  # a lazily opened image decodes here: truncated data is an error
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _decode_error(source, exc) from None
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return _scale16(np.asarray(im).astype(np.uint16))
    if mode == "I":  # 32-bit ints; PNG 16-bit grayscale often decodes to this
        arr = np.asarray(im)
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageError("unsupported 32-bit integer image (values outside 0..65535)")
        return _scale16(arr.astype(np.uint16))
    if mode in ("L", "1"):
        return np.asarray(im.convert("L"))
    try:
        if mode == "LA":
            return np.asarray(im.getchannel("L"))
        return np.asarray(im.convert("RGB"))  # P, PA, RGBA, CMYK, YCbCr, LAB, HSV ...
    except (ValueError, OSError) as exc:
        raise ImageError(f"{source}: unsupported image mode {mode!r} ({exc})") from None


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The Qwen processors' target size: multiples of `factor`, pixel count in range.

    Unlike the processors, a side never rounds down to zero: an image smaller
    than one token becomes one token.
    """
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ImageError(
            f"aspect ratio {max(height, width) / min(height, width):.0f}:1 exceeds the processor's "
            f"limit of {MAX_ASPECT_RATIO}:1"
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def resize_for_tokens(arr: np.ndarray, token_px: int, min_pixels: int, max_pixels: int) -> np.ndarray:
    """Resize an `to_uint8` array exactly as the processor would (PIL bicubic)."""
    h, w = arr.shape[:2]
    th, tw = smart_resize(h, w, token_px, min_pixels, max_pixels)
    if (th, tw) == (h, w):
        return arr
    return np.asarray(Image.fromarray(arr).resize((tw, th), resample=Image.Resampling.BICUBIC))


def pixel_range(token_px: int, min_pixels: int | None, max_pixels: int | None) -> tuple[int, int]:
    """Processor pixel bounds, defaulting to 1 and 16384 tokens when a profile leaves them open."""
    lo = min_pixels if min_pixels is not None else token_px * token_px
    hi = max_pixels if max_pixels is not None else 16384 * token_px * token_px
    return lo, hi
