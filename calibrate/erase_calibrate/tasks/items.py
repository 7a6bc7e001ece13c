"""One benchmark question, ready to give to a model and to score.

An `Item` keeps its image encoded (the bytes the dataset stores) and decodes it
on each access of `Item.image`, so a calibration set of hundreds of 4K images
does not sit decoded in memory. Keep the returned image if you need it twice.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Mapping

from PIL import Image, UnidentifiedImageError

from erase import EraseError
from erase import limits
from erase.imaging import check_image, to_uint8


@dataclass(frozen=True, eq=False)
class Item:
    """A question of one benchmark.

    `question` is the dataset's own question text; `prompt` is the full text
    prompt for the model (the image goes before it). `references` are the gold
    answers: the option letter for multiple choice, every annotator's answer
    for VQA-style benchmarks. `options` maps option letters to option texts
    ("A" -> "red") when the question has options.
    """

    benchmark: str
    id: str
    question: str
    prompt: str
    references: tuple[str, ...]
    image_data: bytes | Image.Image = field(repr=False)
    options: Mapping[str, str] = field(default_factory=dict)
    hint: str | None = None
    answer_type: str | None = None
    precision: int | None = None
    question_type: str | None = None
    unit: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def answer(self) -> str:
        """The first reference answer."""
        return self.references[0] if self.references else ""

    @property
    def image(self) -> Image.Image:
        """The image as a fully decoded PIL image in RGB mode (a new object each call)."""
        return decode_rgb(self.image_data, f"{self.benchmark} item {self.id}")


def decode_rgb(data: bytes | Image.Image, what: str) -> Image.Image:
    """Decode encoded image bytes (or convert a PIL image) to RGB, or raise a one-line `EraseError`.

    Modes are handled as the runtime reads images (`erase.imaging.to_uint8`):
    palette images become RGB, alpha is dropped, 16-bit images are scaled to
    0..255, single-channel images are replicated to three channels.
    """
    try:
        if isinstance(data, Image.Image):
            return _to_rgb(data)
        with limits.pil_header_only():
            im = Image.open(io.BytesIO(data))
        with im:
            check_image(im, "image")  # pixel limit, aspect ratio, floating point: before decoding
            return _to_rgb(im)
    except UnidentifiedImageError:
        raise EraseError(f"{what}: image is not in a readable format") from None
    except EraseError as exc:
        raise EraseError(f"{what}: {exc}") from None
    except (OSError, SyntaxError, ValueError, TypeError) as exc:
        raise EraseError(f"{what}: cannot decode image: {exc}") from None


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        im.load()
        return im.copy()
    return Image.fromarray(to_uint8(im)).convert("RGB")
