"""Benchmark reports: JSON, a markdown table and a PNG plot, each headed by the command line.

The plot is drawn with PIL (no matplotlib): LLM prefill speedup over the base
model against vision tokens, one colour per method, measured solid and
predicted (FLOP model) dashed.
"""

from __future__ import annotations

import io
import json
import math
import textwrap
from typing import Any

from PIL import Image, ImageDraw, ImageFont

MiB = 1024 * 1024

COLORS = {
    "base": (110, 110, 110),
    "erase": (214, 39, 40),
    "stage1": (255, 127, 14),
    "fastv": (31, 119, 180),
    "random": (44, 160, 44),
    "uniform": (148, 103, 189),
    "adavtp": (140, 86, 75),
    "polymorphic": (227, 119, 194),
}


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2) + "\n"


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _x(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}x"


def table_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in records:
        kv = _fmt(r["kv_bytes"] / MiB, 1)
        if r.get("kv_fraction") is not None and r["method"] != "base":
            kv += f" ({r['kv_fraction']:.1%})"
        rows.append(
            [
                r["method"],
                _fmt(r["vision_tokens"]),
                str(r["level"]),
                _fmt(r["layer"]),
                f"{r['tokens_after_stage1']} / {r['tokens_kept']}",
                _fmt(r["vit_ms"]),
                _fmt(r["prefill_ms"]),
                _fmt(r["decode_ms_per_token"]),
                _fmt(r["e2e_ms"]),
                kv,
                _fmt(r["peak_mem_bytes"] / MiB, 0),
                _x(r["predicted_speedup"]),
                _x(r["measured_speedup"]),
                _fmt(r["measured_over_predicted"], 2),
                _x(r.get("measured_speedup_cpu")),
            ]
        )
    return rows


HEADERS = [
    "method",
    "vision tokens",
    "level",
    "layer",
    "kept S1 / S2",
    "ViT ms",
    "prefill ms",
    "decode ms/tok",
    "e2e ms",
    "KV MiB (vs base)",
    "peak MiB",
    "predicted",
    "measured",
    "meas/pred",
    "measured (CPU time)",
]


def markdown_table(records: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(records)]
    return "\n".join(lines)


def to_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    m = report["model"]
    mach = report["machine"]
    where = mach.get("gpu") or mach.get("cpu") or "?"
    out = [
        "# erase-bench",
        "",
        "```",
        report["command"],
        "```",
        "",
        f"- model: {m['name']} ({m['description']}), {m['parameters'] / 1e9:.3f} B parameters, {m['dtype']}, "
        f"attention {m['attn']}, on {mach['device']} ({where}, {mach.get('torch_threads')} threads)",
        f"- profile: {m['profile']}; final keep ratio {s['final_keep_ratio']}; image: {s['image']}",
        f"- {s['repeats']} repeats (median), {s['warmup']} warm-up round(s), methods interleaved; "
        f"{s['new_tokens']} new tokens per generate()",
        f"- {report['date']}; torch {mach['torch']}, transformers {mach['transformers']}; "
        f"load average at start {mach.get('loadavg_start')}, at end {mach.get('loadavg_end')}",
        "",
        markdown_table(report["records"]),
        "",
        "level / layer: Stage 1 complexity level of the image (1 = most complex) and the 0-based Stage 2 layer. "
        "kept S1 / S2: vision tokens entering layer 0 / after the Stage 2 layer. "
        "ViT ms: vision tower; prefill ms: the LLM prefill forward, ERASE's own work (entropy, scoring, "
        "repacking, eviction) included; e2e ms: the whole generate() (the processor is not included). "
        "KV: keys + values after prefill. "
        f"Peak memory: {report['facts']['peak_mem_source']}. "
        "predicted: LLM prefill FLOPs, base / method (the ViT is not in it: Stage 1 prunes after the merger, "
        "so it saves no ViT work); measured: LLM prefill wall time, base / method (medians); meas/pred: their ratio; "
        "measured (CPU time): the same ratio from the process's CPU time in prefill (CPU runs only; robust to other "
        "processes holding a core). The JSON also has the median of per-repeat paired ratios.",
        "",
    ]
    return "\n".join(out)


# ---------------------------------------------------------------------------- plot


def _font(size: int) -> ImageFont.ImageFont:
    try:
        font = ImageFont.load_default(size=size)
        # basic layout: no ligatures, so "--json" is not drawn as an en dash
        return font.font_variant(layout_engine=ImageFont.Layout.BASIC)
    except (TypeError, OSError, AttributeError):
        return ImageFont.load_default()


def _dashed(d: ImageDraw.ImageDraw, p0, p1, fill, width: int, dash: int = 9, gap: int = 6) -> None:
    (x0, y0), (x1, y1) = p0, p1
    length = math.hypot(x1 - x0, y1 - y0)
    if length == 0:
        return
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    pos = 0.0
    while pos < length:
        end = min(length, pos + dash)
        d.line([(x0 + ux * pos, y0 + uy * pos), (x0 + ux * end, y0 + uy * end)], fill=fill, width=width)
        pos = end + gap


def _nice_step(span: float) -> float:
    raw = span / 6
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def to_png(report: dict[str, Any], width: int = 1000, height: int = 640) -> bytes:
    records = report["records"]
    methods = list(dict.fromkeys(r["method"] for r in records))
    tokens = sorted({r["vision_tokens"] for r in records})
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    small, normal = _font(12), _font(14)

    # header: the exact command, wrapped
    y = 10
    for line in textwrap.wrap(report["command"], width=118) or [""]:
        d.text((14, y), line, fill=(0, 0, 0), font=small)
        y += 15
    m = report["model"]
    sub = (
        f"{m['name']} ({m['dtype']}, {report['machine']['device']}) - LLM prefill speedup vs base: "
        "solid = measured, dashed = predicted (FLOP model)"
    )
    d.text((14, y + 2), sub, fill=(60, 60, 60), font=normal)
    top = y + 44

    left, right, bottom = 80, width - 170, height - 60
    values = [1.0]
    for r in records:
        values += [v for v in (r.get("measured_speedup"), r.get("predicted_speedup")) if v is not None]
    ymax = max(values) * 1.1
    step = _nice_step(ymax)
    ymax = step * math.ceil(ymax / step)

    def sx(t: int) -> float:
        if len(tokens) == 1:
            return (left + right) / 2
        lo, hi = math.log2(tokens[0]), math.log2(tokens[-1])
        return left + 30 + (right - left - 60) * (math.log2(t) - lo) / (hi - lo)

    def sy(v: float) -> float:
        return bottom - (bottom - top) * v / ymax

    # axes and grid
    v = 0.0
    while v <= ymax + 1e-9:
        yy = sy(v)
        d.line([(left, yy), (right, yy)], fill=(225, 225, 225))
        d.text((left - 8, yy), f"{v:g}x", fill=(0, 0, 0), font=small, anchor="rm")
        v += step
    d.line([(left, top), (left, bottom), (right, bottom)], fill=(0, 0, 0), width=1)
    for t in tokens:
        d.line([(sx(t), bottom), (sx(t), bottom + 5)], fill=(0, 0, 0))
        d.text((sx(t), bottom + 8), f"{t:,}", fill=(0, 0, 0), font=small, anchor="mt")
    d.text(((left + right) / 2, bottom + 28), "vision tokens", fill=(0, 0, 0), font=normal, anchor="mt")
    d.text((left - 8, top - 6), "speedup", fill=(0, 0, 0), font=normal, anchor="rb")

    # series
    for i, method in enumerate(methods):
        color = COLORS.get(method, (0, 0, 0))
        rows = sorted((r for r in records if r["method"] == method), key=lambda r: r["vision_tokens"])
        for key, dashed in (("predicted_speedup", True), ("measured_speedup", False)):
            pts = [(sx(r["vision_tokens"]), sy(r[key])) for r in rows if r.get(key) is not None]
            for a, b in zip(pts, pts[1:]):
                if dashed:
                    _dashed(d, a, b, color, 2)
                else:
                    d.line([a, b], fill=color, width=3)
            for px, py in pts:
                if dashed:
                    d.rectangle([px - 3, py - 3, px + 3, py + 3], outline=color, width=2)
                else:
                    d.ellipse([px - 4, py - 4, px + 4, py + 4], fill=color)
        ly = top + 10 + 22 * i
        d.line([(right + 20, ly), (right + 50, ly)], fill=color, width=3)
        d.text((right + 58, ly), method, fill=(0, 0, 0), font=normal, anchor="lm")
    ly = top + 10 + 22 * len(methods) + 10
    d.line([(right + 20, ly), (right + 50, ly)], fill=(0, 0, 0), width=3)
    d.text((right + 58, ly), "measured", fill=(0, 0, 0), font=small, anchor="lm")
    _dashed(d, (right + 20, ly + 18), (right + 50, ly + 18), (0, 0, 0), 2)
    d.text((right + 58, ly + 18), "predicted", fill=(0, 0, 0), font=small, anchor="lm")

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
