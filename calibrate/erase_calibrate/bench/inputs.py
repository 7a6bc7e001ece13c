"""Benchmark inputs: synthetic images that give a chosen number of vision tokens, and prompts.

An image of rows x cols tokens is (rows * 28) x (cols * 28) pixels on Qwen2.5-VL,
and a processor whose pixel range admits it keeps that size exactly. Content
matters for Stage 1 (its level and keep ratio follow the image's entropy), so
the default image is not noise or a flat colour: a rendered document page
(title, paragraphs, a table, a bar chart) beside a photo-like region (sky
gradient, fractal terrain, blurred shapes, sensor noise). The layout scales
with the size, so the complexity level stays about the same across token counts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from erase import EraseError

from ..models.presets import TOKEN_PX

IMAGE_KINDS = ("mixed", "page", "photo")
MAX_TOKENS = 65536

PROMPT = "Read the table in the document and the photo beside it. What is the total in the last row, and what is in the photo?"

_WORDS = (
    "the quarterly report shows revenue growth across all regions while operating costs "
    "remained stable compared with the previous year and the board approved the new budget "
    "for research infrastructure and training programs in the second half of the fiscal period"
).split()


def grid_for(tokens: int) -> tuple[int, int]:
    """A near-square (rows, cols) token grid with rows * cols == tokens where possible."""
    rows = int(math.isqrt(tokens))
    while rows > 1 and tokens % rows and rows * rows * 4 > tokens:  # prefer an exact factorisation
        rows -= 1
    if tokens % rows:
        rows = int(math.isqrt(tokens))
        return rows, max(1, round(tokens / rows))
    return rows, tokens // rows


def parse_tokens(text: str) -> list[int]:
    """'1024,4096' -> [1024, 4096]; a one-line EraseError for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    out = []
    for p in parts:
        if not p.isdigit() or int(p) < 4 or int(p) > MAX_TOKENS:
            raise EraseError(
                f"--tokens {text!r}: expected comma-separated vision-token counts between 4 and {MAX_TOKENS}, e.g. 1024,4096"
            )
        out.append(int(p))
    if len(set(out)) != len(out):
        raise EraseError(f"--tokens {text!r}: a token count appears twice")
    return out


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=max(6, size))
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def _fractal(h: int, w: int, rng: np.random.Generator, beta: float = 2.0) -> np.ndarray:
    """1/f^beta noise in [0, 1]: the spectrum of natural images."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** (beta / 2)
    spec[0, 0] = 0
    x = np.fft.irfft2(spec, s=(h, w))
    x -= x.min()
    return x / max(x.max(), 1e-9)


def _photo(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A photo-like landscape: sky gradient, fractal hills with texture, blurred objects, noise."""
    yy = np.linspace(0, 1, h)[:, None]
    sky = np.stack([110 + 90 * yy, 150 + 70 * yy, 230 - 20 * yy], axis=-1) * np.ones((1, w, 1))
    clouds = _fractal(h, w, rng, beta=2.6)
    sky += (np.clip(clouds - 0.55, 0, 1) * 200)[..., None]
    ridge = 0.35 + 0.25 * _fractal(1, w, rng, beta=2.2)[0] if w > 1 else np.full(w, 0.45)
    ground = yy > ridge[None, :]
    tex = _fractal(h, w, rng, beta=1.4)
    fine = rng.normal(0, 1, (h, w))
    land = np.stack([60 + 90 * tex, 90 + 80 * tex, 40 + 50 * tex], axis=-1) + 18 * fine[..., None]
    img = np.where(ground[..., None], land, sky)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    for _ in range(6):  # houses / trees / people-sized blobs
        cx, cy = int(rng.integers(0, w)), int(rng.integers(int(h * 0.45), h))
        r = int(rng.integers(max(2, h // 40), max(3, h // 12)))
        color = tuple(int(c) for c in rng.integers(20, 235, 3))
        if rng.random() < 0.5:
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
        else:
            d.rectangle([cx - r, cy - r, cx + r, cy + int(r * 0.6)], fill=color)
    im = im.filter(ImageFilter.GaussianBlur(radius=max(0.6, h / 700)))
    out = np.asarray(im).astype(np.float64) + rng.normal(0, 4, (h, w, 3))  # sensor noise
    return np.clip(out, 0, 255).astype(np.uint8)


def _page(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A rendered document page: title, paragraphs, a table and a bar chart, slightly off-white."""
    im = Image.new("RGB", (w, h), (250, 249, 244))
    d = ImageDraw.Draw(im)
    u = max(1.0, h / 100)  # layout unit
    margin = int(4 * u)
    y = margin
    title = _font(int(4.5 * u))
    body = _font(int(2.2 * u))
    d.text((margin, y), "Operations Report", fill=(20, 20, 60), font=title)
    y += int(7 * u)
    line_h = int(3.2 * u)
    for _ in range(int(rng.integers(5, 8))):  # a paragraph
        words = rng.choice(_WORDS, size=40)
        text, line = "", ""
        for wd in words:
            if d.textlength(line + " " + wd, font=body) > w - 2 * margin:
                break
            line = (line + " " + wd).strip()
        text = line
        d.text((margin, y), text, fill=(30, 30, 30), font=body)
        y += line_h
    y += int(2 * u)
    # table
    rows, cols = 7, 4
    cw = (w - 2 * margin) // cols
    rh = int(3.4 * u)
    for r in range(rows + 1):
        d.line([(margin, y + r * rh), (margin + cols * cw, y + r * rh)], fill=(90, 90, 90), width=max(1, int(u / 4)))
    for c in range(cols + 1):
        d.line([(margin + c * cw, y), (margin + c * cw, y + rows * rh)], fill=(90, 90, 90), width=max(1, int(u / 4)))
    d.rectangle([margin + 1, y + 1, margin + cols * cw - 1, y + rh - 1], fill=(225, 230, 240))
    heads = ("Region", "Q1", "Q2", "Total")
    for r in range(rows):
        for c in range(cols):
            cell = heads[c] if r == 0 else (f"R{r}" if c == 0 else f"{int(rng.integers(10, 999))}.{int(rng.integers(0, 99)):02d}")
            if r == rows - 1 and c == 0:
                cell = "Total"
            d.text((margin + c * cw + int(u), y + r * rh + int(0.6 * u)), cell, fill=(10, 10, 10), font=body)
    y += rows * rh + int(4 * u)
    # bar chart
    bottom = min(h - margin, y + int(22 * u))
    bars = 8
    bw = (w - 2 * margin) // (bars * 2)
    d.line([(margin, bottom), (w - margin, bottom)], fill=(0, 0, 0), width=max(1, int(u / 3)))
    for i in range(bars):
        top = bottom - int(rng.integers(int(3 * u), int(20 * u)))
        x0 = margin + i * 2 * bw + bw // 2
        d.rectangle([x0, max(y, top), x0 + bw, bottom], fill=(40 + 25 * i, 90, 200 - 15 * i))
    y = bottom + int(3 * u)
    while y + line_h < h - margin:  # more text to the bottom of the page
        words = " ".join(rng.choice(_WORDS, size=12))
        d.text((margin, y), words, fill=(40, 40, 40), font=body)
        y += line_h
    return np.asarray(im)


def synthetic_image(tokens: int, kind: str = "mixed", seed: int = 0) -> Image.Image:
    """An RGB image of `grid_for(tokens)` 28 px tokens: page, photo, or page beside photo."""
    if kind not in IMAGE_KINDS:
        raise EraseError(f"unknown image kind {kind!r} (known: {', '.join(IMAGE_KINDS)})")
    rows, cols = grid_for(tokens)
    h, w = rows * TOKEN_PX, cols * TOKEN_PX
    rng = np.random.default_rng([seed, tokens])
    if kind == "page":
        return Image.fromarray(_page(h, w, rng))
    if kind == "photo":
        return Image.fromarray(_photo(h, w, rng))
    split = (cols // 2) * TOKEN_PX  # on a token boundary: half page, half photo
    out = np.empty((h, w, 3), dtype=np.uint8)
    out[:, :split] = _page(h, split, rng) if split else out[:, :0]
    out[:, split:] = _photo(h, w - split, rng)
    return Image.fromarray(out)


def fit_image(image: Image.Image, tokens: int) -> Image.Image:
    """A user image resized (bicubic) to the grid of `tokens` tokens."""
    rows, cols = grid_for(tokens)
    return image.convert("RGB").resize((cols * TOKEN_PX, rows * TOKEN_PX), Image.Resampling.BICUBIC)


def messages(prompt: str = PROMPT) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def build_inputs(processor: Any, image: Image.Image, prompt: str = PROMPT) -> dict[str, Any]:
    """Processor output (tensors) for one prompt with one image."""
    text = processor.apply_chat_template(messages(prompt), add_generation_prompt=True, tokenize=False)
    return dict(processor(text=[text], images=[image], padding=True, return_tensors="pt"))
