"""Small synthetic pictures drawn with PIL for the benchmark stand-ins.

Every function returns an RGB image no larger than 320 px a side, drawn only
from its arguments (no randomness inside), with PIL's bundled default font so
the result does not depend on the fonts a machine has installed.
"""

from __future__ import annotations

import io
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

MAX_SIDE = 320
PALETTE = {
    "red": (214, 48, 49),
    "green": (39, 174, 96),
    "blue": (41, 98, 255),
    "yellow": (241, 196, 15),
    "orange": (230, 126, 34),
    "purple": (142, 68, 173),
    "gray": (120, 120, 120),
    "black": (20, 20, 20),
    "white": (250, 250, 250),
}


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def png_bytes(image: Image.Image) -> bytes:
    """PNG-encode an image (the form the stand-in parquet files store)."""
    if max(image.size) > MAX_SIDE:
        raise ValueError(f"synthetic images stay within {MAX_SIDE} px, got {image.size}")
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def document_page(title: str, lines: Sequence[str], size: tuple[int, int] = (240, 320)) -> Image.Image:
    """A white page with a bold-ish title, a rule and lines of text (DocVQA, OCRBench receipts)."""
    im = Image.new("RGB", size, (252, 252, 248))
    d = ImageDraw.Draw(im)
    d.text((16, 14), title, fill=(10, 10, 10), font=font(18), stroke_width=1, stroke_fill=(10, 10, 10))
    d.line((16, 42, size[0] - 16, 42), fill=(60, 60, 60), width=2)
    y = 54
    for line in lines:
        d.text((16, y), line, fill=(30, 30, 30), font=font(12))
        y += 20
    return im


def infographic(title: str, blocks: Sequence[tuple[str, str, str]], size: tuple[int, int] = (240, 320)) -> Image.Image:
    """A poster: a title band, then one coloured block per (big figure, caption, colour name)."""
    im = Image.new("RGB", size, (245, 243, 236))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, size[0], 44), fill=(33, 47, 61))
    d.text((12, 12), title, fill=(255, 255, 255), font=font(16))
    height = (size[1] - 56) // max(1, len(blocks))
    for i, (figure, caption, colour) in enumerate(blocks):
        top = 52 + i * height
        d.rounded_rectangle((10, top, size[0] - 10, top + height - 8), radius=8, fill=PALETTE[colour])
        d.text((22, top + 8), figure, fill=(255, 255, 255), font=font(28))
        d.text((22, top + 44), caption, fill=(255, 255, 255), font=font(12))
    return im


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    suffix: str = "",
    colour: str = "blue",
    size: tuple[int, int] = (320, 240),
) -> Image.Image:
    """A vertical bar chart with axes, category labels and a value label on each bar."""
    im = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(im)
    w, h = size
    left, right, top, bottom = 30, w - 12, 34, h - 30
    d.text((left, 8), title, fill=(20, 20, 20), font=font(14))
    d.line((left, top, left, bottom), fill=(0, 0, 0), width=1)
    d.line((left, bottom, right, bottom), fill=(0, 0, 0), width=1)
    peak = max(values) or 1
    slot = (right - left) / len(values)
    for i, (label, value) in enumerate(zip(labels, values)):
        x0 = left + i * slot + slot * 0.2
        x1 = left + (i + 1) * slot - slot * 0.2
        y0 = bottom - (bottom - top - 18) * value / peak
        d.rectangle((x0, y0, x1, bottom - 1), fill=PALETTE[colour])
        text = f"{value:g}{suffix}"
        d.text(((x0 + x1) / 2, y0 - 3), text, fill=(20, 20, 20), font=font(11), anchor="mb")
        d.text(((x0 + x1) / 2, bottom + 4), label, fill=(20, 20, 20), font=font(11), anchor="ma")
    return im


def line_chart(title: str, xs: Sequence[int], ys: Sequence[float], size: tuple[int, int] = (320, 200)) -> Image.Image:
    """A line chart with a point and a year label per sample."""
    im = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(im)
    w, h = size
    left, right, top, bottom = 28, w - 16, 30, h - 28
    d.text((left, 6), title, fill=(20, 20, 20), font=font(13))
    d.line((left, top, left, bottom), fill=(0, 0, 0))
    d.line((left, bottom, right, bottom), fill=(0, 0, 0))
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1
    points = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        px = left + 10 + i * (right - left - 20) / max(1, len(xs) - 1)
        py = bottom - 8 - (bottom - top - 16) * (y - lo) / span
        points.append((px, py))
        d.text((px, bottom + 4), str(x), fill=(20, 20, 20), font=font(9), anchor="ma")
    d.line(points, fill=PALETTE["red"], width=2)
    for px, py in points:
        d.ellipse((px - 3, py - 3, px + 3, py + 3), fill=PALETTE["red"])
    return im


def word_image(text: str, *, size: tuple[int, int] = (200, 64), fg: str = "black", bg=(236, 228, 210)) -> Image.Image:
    """One line of text centred on a plain background (a cropped word, as in OCR benchmarks)."""
    im = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(im)
    d.text((size[0] / 2, size[1] / 2), text, fill=PALETTE[fg], font=font(30), anchor="mm")
    return im


def handwritten_formula(tokens: Sequence[str], wobble: Sequence[int], size: tuple[int, int] = (240, 80)) -> Image.Image:
    """A formula written token by token with per-token vertical wobble (a stand-in for handwriting).

    A token starting with "^" is drawn raised and smaller (an exponent).
    """
    im = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(im)
    x = 14
    for token, dy in zip(tokens, wobble):
        raised = token.startswith("^")
        body = token[1:] if raised else token
        f = font(18 if raised else 30)
        y = 16 + dy - (12 if raised else 0)
        d.text((x, y), body, fill=(25, 25, 90), font=f)
        x += int(d.textlength(body, font=f)) + 4
    return im


def street_sign(text: str, *, board: str = "red", size: tuple[int, int] = (256, 192)) -> Image.Image:
    """A sky, ground, a pole and a sign board carrying `text` (a scene-text photo stand-in)."""
    im = Image.new("RGB", size, (170, 205, 235))
    d = ImageDraw.Draw(im)
    w, h = size
    d.rectangle((0, int(h * 0.7), w, h), fill=(96, 140, 72))
    d.rectangle((w // 2 - 4, int(h * 0.35), w // 2 + 4, int(h * 0.9)), fill=(90, 90, 90))
    box = (w // 2 - 80, 24, w // 2 + 80, 84)
    d.rectangle(box, fill=PALETTE[board], outline=(255, 255, 255), width=3)
    d.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), text, fill=(255, 255, 255), font=font(24), anchor="mm")
    return im


def street_scene(cars: Sequence[str], light: str, size: tuple[int, int] = (320, 200)) -> Image.Image:
    """A road with one car (a coloured box with wheels) per colour in `cars` and a traffic light."""
    im = Image.new("RGB", size, (180, 210, 240))
    d = ImageDraw.Draw(im)
    w, h = size
    d.rectangle((0, h // 2, w, h), fill=(70, 70, 75))
    d.line((0, int(h * 0.75), w, int(h * 0.75)), fill=(240, 240, 240), width=2)
    d.rectangle((w - 34, 20, w - 14, 80), fill=(30, 30, 30))
    for k, lamp in enumerate(("red", "yellow", "green")):
        on = lamp == light
        d.ellipse((w - 30, 24 + 18 * k, w - 18, 36 + 18 * k), fill=PALETTE[lamp] if on else (60, 60, 60))
    for i, colour in enumerate(cars):
        x = 12 + i * 56
        y = h // 2 + 18 + (i % 2) * 40
        d.rectangle((x, y, x + 44, y + 20), fill=PALETTE[colour])
        d.rectangle((x + 10, y - 10, x + 34, y), fill=PALETTE[colour])
        d.ellipse((x + 4, y + 16, x + 14, y + 26), fill=(10, 10, 10))
        d.ellipse((x + 30, y + 16, x + 40, y + 26), fill=(10, 10, 10))
    return im


def shapes(items: Sequence[tuple[str, str, tuple[int, int], int]], size: tuple[int, int] = (256, 192)) -> Image.Image:
    """Shapes on a light background: (kind, colour, centre, radius), kind in circle/square/triangle."""
    im = Image.new("RGB", size, (248, 248, 244))
    d = ImageDraw.Draw(im)
    for kind, colour, (cx, cy), r in items:
        fill = PALETTE[colour]
        if kind == "circle":
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif kind == "square":
            d.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif kind == "triangle":
            d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
        else:
            raise ValueError(f"unknown shape kind {kind!r}")
    return im


def triangle_figure(label: str, size: tuple[int, int] = (240, 180)) -> Image.Image:
    """A right triangle with a right-angle mark and `label` at one acute angle (geometry question)."""
    im = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(im)
    a, b, c = (30, 150), (210, 150), (30, 30)
    d.polygon([a, b, c], outline=(0, 0, 0), width=2)
    d.rectangle((30, 136, 44, 150), outline=(0, 0, 0))
    d.text((170, 128), label, fill=(200, 0, 0), font=font(16))
    d.text((100, 156), "6", fill=(0, 0, 0), font=font(14))
    d.text((12, 84), "6", fill=(0, 0, 0), font=font(14))
    return im


def price_tags(tags: Sequence[tuple[str, str]], size: tuple[int, int] = (280, 140)) -> Image.Image:
    """Price tags side by side: (item name, price text)."""
    im = Image.new("RGB", size, (250, 246, 235))
    d = ImageDraw.Draw(im)
    width = size[0] // max(1, len(tags))
    for i, (name, price) in enumerate(tags):
        x0 = i * width + 10
        d.rounded_rectangle((x0, 20, x0 + width - 20, size[1] - 20), radius=10, fill=(255, 255, 255), outline=(0, 0, 0))
        d.text((x0 + (width - 20) / 2, 48), name, fill=(0, 0, 0), font=font(16), anchor="mm")
        d.text((x0 + (width - 20) / 2, 86), price, fill=(180, 0, 0), font=font(22), anchor="mm")
    return im


def number_cards(numbers: Sequence[int], size: tuple[int, int] = (240, 100)) -> Image.Image:
    """A row of cards, one number on each."""
    im = Image.new("RGB", size, (235, 240, 250))
    d = ImageDraw.Draw(im)
    width = size[0] // max(1, len(numbers))
    for i, n in enumerate(numbers):
        x0 = i * width + 8
        d.rectangle((x0, 16, x0 + width - 16, size[1] - 16), fill=(255, 255, 255), outline=(40, 40, 120), width=2)
        d.text((x0 + (width - 16) / 2, size[1] / 2), str(n), fill=(40, 40, 120), font=font(30), anchor="mm")
    return im
