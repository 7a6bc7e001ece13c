"""Small PNG charts drawn with PIL (no plotting dependency)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageDraw

W, H, M = 720, 480, 64  # size and margin


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    color: tuple[int, int, int]
    size: int = 4
    line: bool = False


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    step = (hi - lo) / n
    return [lo + i * step for i in range(n + 1)]


def scatter_png(
    series: Sequence[Series], *, title: str, xlabel: str, ylabel: str,
    xlim: tuple[float, float] | None = None, ylim: tuple[float, float] | None = None,
    highlight: tuple[float, float] | None = None, highlight_label: str = "", legend: str = "upper right",
) -> bytes:
    """`legend`: "upper right" or "lower left" (whichever corner the data leaves empty)."""
    xs = [p[0] for s in series for p in s.points] or [0.0, 1.0]
    ys = [p[1] for s in series for p in s.points] or [0.0, 1.0]
    x0, x1 = xlim or (min(xs), max(xs))
    y0, y1 = ylim or (min(ys), max(ys))
    if x1 - x0 < 1e-9:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    px = lambda x: M + (x - x0) / (x1 - x0) * (W - 2 * M)  # noqa: E731
    py = lambda y: H - M - (y - y0) / (y1 - y0) * (H - 2 * M)  # noqa: E731
    d.rectangle([M, M, W - M, H - M], outline=(0, 0, 0))
    for t in _ticks(x0, x1):
        d.line([px(t), H - M, px(t), H - M + 5], fill=(0, 0, 0))
        d.text((px(t) - 12, H - M + 8), f"{t:.3g}", fill=(0, 0, 0))
    for t in _ticks(y0, y1):
        d.line([M - 5, py(t), M, py(t)], fill=(0, 0, 0))
        d.text((6, py(t) - 6), f"{t:.3g}", fill=(0, 0, 0))
    d.text((M, 20), title, fill=(0, 0, 0))
    d.text((W // 2 - 60, H - 24), xlabel, fill=(0, 0, 0))
    d.text((6, M - 24), ylabel, fill=(0, 0, 0))
    for k, s in enumerate(series):
        pts = [(px(x), py(y)) for x, y in s.points]
        if s.line and len(pts) > 1:
            d.line(pts, fill=s.color, width=2)
        for x, y in pts:
            d.ellipse([x - s.size, y - s.size, x + s.size, y + s.size], fill=s.color)
        lx, ly = (M + 12, H - M - 8 - 16 * (len(series) - k)) if legend == "lower left" else (W - M - 150, M + 8 + 16 * k)
        d.text((lx, ly), f"o {s.label}", fill=s.color)
    if highlight is not None:
        x, y = px(highlight[0]), py(highlight[1])
        d.ellipse([x - 10, y - 10, x + 10, y + 10], outline=(220, 0, 0), width=3)
        d.text((x + 12, y - 18), highlight_label, fill=(220, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
