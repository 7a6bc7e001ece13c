"""erase-eval's outputs: the paper's Table 1 layout (text and markdown), JSON, and a PNG plot."""

from __future__ import annotations

import json
from typing import Any

from ..plotting import Series, scatter_png

COLORS = {
    "base": (120, 120, 120),
    "erase": (214, 39, 40),
    "stage1": (255, 127, 14),
    "fastv": (31, 119, 180),
    "random": (140, 86, 75),
    "uniform": (148, 103, 189),
    "adavtp": (44, 160, 44),
    "polymorphic": (23, 190, 207),
}


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def table_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: base, then one block per requested pruning level, methods in order;
    per benchmark 'accuracy (retained %)', then the mean retained over benchmarks."""
    rows = result["rows"]
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    levels = sorted({r["pruning"] for r in rows if r["method"] != "base"})
    by = {(r["benchmark"], r["method"], r["pruning"]): r for r in rows}
    summary = {(s["method"], s["pruning"]): s for s in result["summary"]}
    header = ["pruning", "method", "achieved", *benches, "avg retained"]
    out = []

    def line(method: str, pruning: float, label: str) -> list[str]:
        s = summary[(method, pruning)]
        cells = []
        for b in benches:
            r = by[(b, method, pruning)]
            cells.append(_pct(r["accuracy"]) if method == "base" else f"{_pct(r['accuracy'])} ({_pct(r['retained'])}%)")
        return [label, method, f"{_pct(s['pruning_achieved'])}%", *cells, f"{_pct(s['retained'])}%"]

    out.append(line("base", 0.0, "0%"))
    for p in levels:
        for m in methods:
            if m != "base" and (m, p) in summary:
                out.append(line(m, p, f"{p:.0%}"))
    return header, out


def markdown_table(result: dict[str, Any]) -> str:
    header, rows = table_rows(result)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def text_table(result: dict[str, Any]) -> str:
    header, rows = table_rows(result)
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    out = [fmt(header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    prev = None
    for r in rows:
        if prev is not None and r[0] != prev:
            out.append("")
        out.append(fmt(r))
        prev = r[0]
    return "\n".join(out) + "\n"


def to_markdown(result: dict[str, Any]) -> str:
    m = result["model"]
    head = [
        f"# erase-eval: {m['name']}",
        "",
        f"`{result['command']}`",
        "",
        f"{result['date']}; {result['machine'].get('cpu') or ''} ({result['machine']['device']}); "
        f"profile {result['profile']['name']} ({result['profile']['source']}); {m['dtype']}, "
        f"greedy, up to {result['settings']['max_new_tokens']} new tokens.",
        "",
        "Accuracy in %, with the share of base accuracy retained in brackets; `achieved` is the mean "
        "pruning the runtime reached (share of vision tokens removed after the last stage); `avg retained` "
        "is the mean over the benchmarks.",
        "",
        "",
    ]
    notes = [f"- {n}" for n in result.get("notes", [])]
    return "\n".join(head) + markdown_table(result) + ("\n" + "\n".join(notes) + "\n" if notes else "")


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=1, sort_keys=False) + "\n"


def to_png(result: dict[str, Any]) -> bytes:
    """Accuracy (mean over the benchmarks) against the pruning reached, one line per method."""
    summary = result["summary"]
    base = next(s for s in summary if s["method"] == "base")
    methods = [m for m in dict.fromkeys(s["method"] for s in summary) if m != "base"]
    series = []
    top = max([s["pruning_achieved"] or 0.0 for s in summary] + [0.9])
    series.append(Series("base", [(0.0, 100 * base["accuracy"]), (top, 100 * base["accuracy"])], COLORS["base"], size=2, line=True))
    for m in methods:
        pts = sorted((s["pruning_achieved"], 100 * s["accuracy"]) for s in summary if s["method"] == m and s["accuracy"] is not None)
        series.append(Series(m, pts, COLORS.get(m, (0, 0, 0)), line=True))
    names = ", ".join(dict.fromkeys(r["benchmark"] for r in result["rows"]))
    return scatter_png(
        series,
        title=f"erase-eval {result['model']['name']}: accuracy vs pruning ({names})",
        xlabel="pruning reached (share of vision tokens removed)",
        ylabel="accuracy %",
        xlim=(0.0, 1.0),
        ylim=(0.0, 100.0),
        legend="lower left",  # pruned methods sit right, base at x = 0 near the top
    )
