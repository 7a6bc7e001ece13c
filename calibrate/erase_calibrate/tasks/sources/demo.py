"""Seeded synthetic tasks for the demo model: image, question, short answer.

Every item is a 448x448 RGB image (16x16 = 256 vision tokens of 28x28 px on
Qwen2.5-VL) whose answer depends on one small region, drawn on a background of
deliberately varied complexity:

- simple backgrounds: ``flat`` (one colour), ``page`` (a document-like ruled
  page with grey text bars), ``gradient`` (a gentle two-colour ramp);
- complex backgrounds: ``texture`` (stripes / checks with a little noise),
  ``noise`` (strong pixel noise), ``clutter`` (many grey lines, boxes and blobs
  over noise).

Tasks (question -> answer):

- ``letter``: read one capital letter on a label (1 token);
- ``digit``: read one digit on a label (1 token);
- ``word``: read a short word on a label (2 tokens);
- ``color``: name the colour of the one coloured shape (1 token);
- ``count``: count the coloured shapes, 1..5 (1 token each);
- ``shape``: name the kind of the one coloured shape (circle, square, triangle, diamond).

(A ``which quadrant`` task was tried and dropped: a from-scratch model this small did not learn
to read absolute position from M-RoPE within the CPU training budget; see docs/demo.md.)

Objects are snapped to the 28 px token grid (a label or shape lies inside its
token cells), so the answer-bearing region is exactly known
(``item.metadata["answer_tokens"]``, row-major token indices) and is a few
tokens out of 256: dropping vision tokens at random loses it; entropy ranking
keeps it on simple backgrounds (text and edges are the only non-flat patches)
and may not on complex ones, which is what an ERASE profile has to learn.
Background clutter is grey only, so it is never mistaken for a coloured shape.

Item ``i`` of a split depends only on ``(seed, split, i)``: the same call gives
the same items on every run, and the ``train``, ``test`` and ``calibration``
splits never share an item. Text is drawn with Pillow's bundled font, so the
result does not depend on the fonts a machine has installed.

Registered as the item source `demo`: `tasks.item_pool("demo", data_dir=None, limit=72, seed=0)`
is the calibration split, `tasks.evaluation_pool("demo", ...)` the held-out ``test`` split (360 by
default), both scored by `score`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..items import Item
from ..registry import TaskSource, register

__all__ = [
    "BACKGROUNDS",
    "BENCHMARK",
    "COLORS",
    "COMPLEX_BACKGROUNDS",
    "GRID",
    "IMAGE_SIZE",
    "LETTERS",
    "SHAPES",
    "SIMPLE_BACKGROUNDS",
    "SPLITS",
    "TASKS",
    "TOKEN_PX",
    "WORDS",
    "answer_vocabulary",
    "calibration_items",
    "custom_item",
    "generate_items",
    "heldout_items",
    "is_simple",
    "make_item",
    "normalize",
    "score",
]

BENCHMARK = "demo"
IMAGE_SIZE = 448  # px per side
TOKEN_PX = 28  # Qwen2.5-VL: ViT patch 14 x spatial merge 2
GRID = IMAGE_SIZE // TOKEN_PX  # 16 x 16 = 256 vision tokens

TASKS = ("letter", "digit", "word", "color", "count", "shape")
SIMPLE_BACKGROUNDS = ("flat", "page", "gradient")
COMPLEX_BACKGROUNDS = ("texture", "noise", "clutter")
BACKGROUNDS = SIMPLE_BACKGROUNDS + COMPLEX_BACKGROUNDS
# Training-only: a near-white page, the first step of the training curriculum (not in the test mix).
BLANK = "blank"
SPLITS = {"train": 0, "test": 1, "calibration": 2}

LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # no I / O / Q (read as 1 / 0)
DIGITS = "0123456789"
WORDS = ("cat", "dog", "sun", "car", "tree", "fish", "bird", "book", "cup", "hat", "key", "box")
COLORS = {
    "red": (220, 35, 35),
    "green": (30, 165, 50),
    "blue": (35, 70, 225),
    "yellow": (240, 210, 20),
    "purple": (145, 45, 195),
    "orange": (245, 135, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond")
MAX_COUNT = 4

QUESTIONS = {
    "letter": "What letter is on the label?",
    "digit": "What digit is on the label?",
    "word": "What word is on the label?",
    "color": "What color is the shape?",
    "count": "How many colored shapes are there?",
    "shape": "What shape is it?",
}


def answer_vocabulary(task: str) -> tuple[str, ...]:
    """Every answer a task can have."""
    return {
        "letter": tuple(LETTERS),
        "digit": tuple(DIGITS),
        "word": WORDS,
        "color": tuple(COLORS),
        "count": tuple(str(n) for n in range(1, MAX_COUNT + 1)),
        "shape": SHAPES,
    }[task]


# ----------------------------------------------------------------------------- scoring
def normalize(text: str) -> str:
    """Lowercase, hyphens/underscores as spaces, surrounding punctuation and spaces stripped."""
    text = re.sub(r"[-_]", " ", str(text).lower())
    return " ".join(text.split()).strip(" .,;:!?\"'")


def score(item: Item, prediction: str) -> float:
    """1.0 when the answer equals a reference after `normalize` (lowercase, stripped), else 0.0."""
    pred = normalize(prediction)
    return 1.0 if any(pred == normalize(ref) for ref in item.references) else 0.0


def is_simple(item: Item) -> bool:
    """Whether the item's background is one of the simple (flat / near-flat) kinds."""
    return item.metadata.get("background") in SIMPLE_BACKGROUNDS


# ----------------------------------------------------------------------------- generation
def make_item(
    index: int,
    *,
    seed: int = 0,
    split: str = "test",
    task: str | None = None,
    background: str | None = None,
    grid: int = GRID,
) -> Item:
    """Item `index` of a split. Task and background cycle so any 36 consecutive items cover
    every (task, background) pair; pass `task` / `background` to force one. `grid` is the
    image side in tokens (16: 448 px; training starts on smaller 8-token pictures)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    task = task or TASKS[index % len(TASKS)]
    background = background or BACKGROUNDS[(index // len(TASKS)) % len(BACKGROUNDS)]
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if background not in BACKGROUNDS and background != BLANK:
        raise ValueError(f"background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
    if grid < 4 or grid % 2:
        raise ValueError(f"grid must be an even number of tokens >= 4, got {grid}")
    key = [int(seed), SPLITS[split], int(index)] + ([] if grid == GRID else [int(grid)])
    rng = np.random.default_rng(key)
    canvas = Image.fromarray(_background(background, rng, grid * TOKEN_PX), mode="RGB")
    answer, cells, labels = _draw_task(canvas, task, rng, grid)
    if background in COMPLEX_BACKGROUNDS:  # photo-like sensor noise over everything, objects included
        canvas = _sensor_noise(canvas, rng.uniform(1.5, 6.0), rng)
    question = QUESTIONS[task]
    tokens, labels = zip(*sorted(zip((r * grid + c for r, c in cells), labels)))
    return Item(
        benchmark=BENCHMARK,
        id=f"{split}-{seed}-{index}",
        question=question,
        prompt=question,
        references=(answer,),
        image_data=canvas,
        answer_type="text",
        question_type=task,
        metadata={
            "task": task,
            "background": background,
            "complexity": "complex" if background in COMPLEX_BACKGROUNDS else "simple",
            "answer_tokens": tuple(tokens),
            "token_labels": tuple(labels),  # what each answer token shows (training's auxiliary targets)
            "split": split,
            "seed": int(seed),
            "index": int(index),
        },
    )


def generate_items(
    n: int,
    *,
    seed: int = 0,
    split: str = "test",
    start: int = 0,
    tasks: Sequence[str] | None = None,
    backgrounds: Sequence[str] | None = None,
    grid: int = GRID,
) -> list[Item]:
    """Items `start .. start + n - 1` of a split, optionally only some tasks / backgrounds.

    With a filter, the item indices still run over the split, skipping items
    outside the filter, so a filtered list is a subset of the unfiltered one.
    """
    tasks = tuple(tasks) if tasks else TASKS
    backgrounds = tuple(backgrounds) if backgrounds else BACKGROUNDS
    for name in tasks:
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    for name in backgrounds:
        if name not in BACKGROUNDS:
            raise ValueError(f"unknown background {name!r}; choose from {', '.join(BACKGROUNDS)}")
    out: list[Item] = []
    i = start
    while len(out) < n:
        t = TASKS[i % len(TASKS)]
        b = BACKGROUNDS[(i // len(TASKS)) % len(BACKGROUNDS)]
        if t in tasks and b in backgrounds:
            out.append(make_item(i, seed=seed, split=split, grid=grid))
        i += 1
    return out


def heldout_items(n: int = 360, *, seed: int = 0, backgrounds: Sequence[str] | None = None) -> list[Item]:
    """Held-out evaluation items (the ``test`` split; never seen in training)."""
    return generate_items(n, seed=seed, split="test", backgrounds=backgrounds)


def custom_item(image: Image.Image, question: str) -> Item:
    """An item from a user's own image and question (no reference answer)."""
    return Item(
        benchmark=BENCHMARK, id="custom", question=question, prompt=question, references=(), image_data=image,
        answer_type="text", question_type="custom", metadata={"background": "custom"},
    )


def calibration_items(limit: int = 72, *, seed: int = 0) -> list[Item]:
    """Calibration items (the ``calibration`` split: disjoint from training and test).

    Balanced over the 6 tasks x 6 backgrounds; the calibrator keeps those the
    unpruned model answers correctly.
    """
    return generate_items(limit, seed=seed, split="calibration")


# ----------------------------------------------------------------------------- backgrounds
def _background(kind: str, rng: np.random.Generator, s: int) -> np.ndarray:
    if kind == BLANK:
        img = np.broadcast_to(np.float32(rng.uniform(240, 255)), (s, s, 3)).astype(np.float32)
    elif kind == "flat":
        base = _grey_tint(rng, 110, 250)
        img = np.broadcast_to(base, (s, s, 3)).astype(np.float32)
    elif kind == "gradient":
        c0 = _grey_tint(rng, 150, 245)
        c1 = np.clip(c0 + rng.uniform(-35, 35, 3), 0, 255)
        theta = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
        t = (xx * math.cos(theta) + yy * math.sin(theta) + 1.5) / 3.0
        img = c0 + (c1 - c0) * t[..., None]
    elif kind == "page":
        img = _page(rng, s)
    elif kind == "texture":
        img = _texture(rng, s)
    elif kind == "noise":
        base = _grey_tint(rng, 70, 190)
        sigma = math.exp(rng.uniform(math.log(4), math.log(45)))
        amp = _amplitude_field(rng, s)
        mono = rng.normal(0, sigma, (s, s, 1))
        img = base + amp * (mono + rng.normal(0, sigma * 0.25, (s, s, 3)))
    elif kind == "clutter":
        img = _clutter(rng, s)
    else:  # pragma: no cover - checked by the callers
        raise ValueError(kind)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _amplitude_field(rng: np.random.Generator, s: int) -> np.ndarray:
    """A smooth HxWx1 field in [0.1, 1]: busy and calm areas in one picture."""
    coarse = rng.uniform(0.0, 1.0, (4, 4)).astype(np.float32)
    img = Image.fromarray(coarse, mode="F").resize((s, s), Image.Resampling.BICUBIC)
    field = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    return (0.1 + 0.9 * field)[..., None]


def _sensor_noise(canvas: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(canvas, dtype=np.float32)
    arr = arr + rng.normal(0, sigma, arr.shape[:2] + (1,)) + rng.normal(0, sigma * 0.3, arr.shape)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="RGB")


def _grey_tint(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """A low-saturation colour: a grey level with a small per-channel tint."""
    return np.clip(rng.uniform(lo, hi) + rng.uniform(-12, 12, 3), 0, 255).astype(np.float32)


def _page(rng: np.random.Generator, s: int) -> np.ndarray:
    paper = np.clip(rng.uniform(236, 252) + rng.uniform(-4, 4, 3), 0, 255)
    img = Image.new("RGB", (s, s), tuple(int(v) for v in paper))
    d = ImageDraw.Draw(img)
    rule = tuple(int(v) for v in paper - rng.uniform(25, 45))
    offset = int(rng.integers(6, 22))
    for y in range(offset, s, TOKEN_PX):  # ruled lines, one per token row
        d.line([(0, y), (s, y)], fill=rule, width=1)
    margin = int(rng.integers(20, 60))
    d.line([(margin, 0), (margin, s)], fill=rule, width=1)
    ink = int(rng.uniform(90, 170))
    for _ in range(int(rng.integers(5, 12))):  # text lines as grey bars
        row = int(rng.integers(0, s // TOKEN_PX))
        y = row * TOKEN_PX + offset - 9
        x0 = margin + int(rng.integers(6, 40))
        x1 = min(s - 10, x0 + int(rng.integers(60, 320)))
        if y > 0:
            d.rectangle([x0, y, x1, y + 4], fill=(ink, ink, ink))
    return np.asarray(img, dtype=np.float32)


def _texture(rng: np.random.Generator, s: int) -> np.ndarray:
    base = _grey_tint(rng, 90, 180)
    amp = rng.uniform(8, 60)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    if rng.random() < 0.5:
        period = rng.uniform(5, 18)
        theta = rng.uniform(0, math.pi)
        wave = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period)
    else:
        p = int(rng.integers(4, 12))
        wave = ((xx // p + yy // p) % 2) * 2.0 - 1.0
    field = _amplitude_field(rng, s)
    return base + amp * field * wave[..., None] + rng.normal(0, rng.uniform(1, 6), (s, s, 1))


def _clutter(rng: np.random.Generator, s: int) -> np.ndarray:
    base = _grey_tint(rng, 100, 200)
    arr = np.clip(base + rng.normal(0, rng.uniform(1, 8), (s, s, 1)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, mode="RGB")
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(25, 140) * (s / IMAGE_SIZE) ** 2) + 1):
        g = int(rng.integers(30, 230))
        fill = (g, g, g)
        x0, y0 = (int(v) for v in rng.integers(-20, s, 2))
        w, h = (int(v) for v in rng.integers(6, 70, 2))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            x1, y1 = (int(v) for v in rng.integers(0, s, 2))
            d.line([(x0, y0), (x1, y1)], fill=fill, width=int(rng.integers(1, 4)))
        elif kind == 1:
            d.rectangle([x0, y0, x0 + w, y0 + h], outline=fill, width=int(rng.integers(1, 3)))
        elif kind == 2:
            d.ellipse([x0, y0, x0 + w, y0 + h], fill=fill)
        else:
            d.rectangle([x0, y0, x0 + w // 2, y0 + h // 2], fill=fill)
    return np.asarray(img, dtype=np.float32)


# ----------------------------------------------------------------------------- objects
@dataclass(frozen=True)
class _Box:
    row: int
    col: int
    width: int = 1  # in token cells

    def cells(self) -> list[tuple[int, int]]:
        return [(self.row, self.col + k) for k in range(self.width)]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _free_cells(
    rng: np.random.Generator, n: int, rows: range, cols: range, width: int = 1, halo: bool = True
) -> list[_Box]:
    """n boxes of `width` cells, distinct; with `halo`, no two touching (a one-cell gap all round)."""
    taken: set[tuple[int, int]] = set()
    boxes: list[_Box] = []
    rows, cols = list(rows), [c for c in cols if c + width - 1 <= max(cols)]
    while len(boxes) < n:
        box = _Box(int(rng.choice(rows)), int(rng.choice(cols)), width)
        cells = box.cells()
        reach = (-1, 0, 1) if halo else (0,)
        around = {(r + dr, c + dc) for r, c in cells for dr in reach for dc in reach}
        if around & taken:
            continue
        taken.update(cells)
        boxes.append(box)
    return boxes


def _draw_label(canvas: Image.Image, box: _Box, text: str, rng: np.random.Generator, size: int) -> None:
    d = ImageDraw.Draw(canvas)
    x0, y0 = box.col * TOKEN_PX, box.row * TOKEN_PX
    x1, y1 = x0 + box.width * TOKEN_PX - 1, y0 + TOKEN_PX - 1
    paper = int(rng.integers(238, 256))
    d.rectangle([x0 + 1, y0 + 1, x1 - 1, y1 - 1], fill=(paper, paper, paper), outline=(40, 40, 40), width=1)
    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    ink = int(rng.integers(0, 50))
    cx = (x0 + x1 + 1) / 2 + rng.integers(-1, 2)
    cy = (y0 + y1 + 1) / 2 + rng.integers(-1, 2)
    d.text((cx - (left + right) / 2, cy - (top + bottom) / 2), text, font=font, fill=(ink, ink, ink))


def _draw_shape(canvas: Image.Image, box: _Box, color: str, rng: np.random.Generator) -> str:
    """Draw a shape of a random kind in the box's cell; return the kind."""
    d = ImageDraw.Draw(canvas)
    size = int(rng.integers(16, 25))
    free = TOKEN_PX - 2 - size
    x0 = box.col * TOKEN_PX + 1 + int(rng.integers(0, free + 1))
    y0 = box.row * TOKEN_PX + 1 + int(rng.integers(0, free + 1))
    x1, y1 = x0 + size - 1, y0 + size - 1
    rgb = tuple(int(np.clip(v + rng.integers(-15, 16), 0, 255)) for v in COLORS[color])
    outline = (20, 20, 20)
    kind = SHAPES[int(rng.integers(0, len(SHAPES)))]
    if kind == "circle":
        d.ellipse([x0, y0, x1, y1], fill=rgb, outline=outline, width=2)
    elif kind == "square":
        d.rectangle([x0, y0, x1, y1], fill=rgb, outline=outline, width=2)
    elif kind == "triangle":
        d.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=rgb, outline=outline, width=2)
    else:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        d.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=rgb, outline=outline, width=2)
    return kind


def _draw_task(
    canvas: Image.Image, task: str, rng: np.random.Generator, grid: int
) -> tuple[str, list[tuple[int, int]], list[str]]:
    """Draw the task's objects; return the answer, their cells and what each cell shows."""
    everywhere = range(grid)
    if task in ("letter", "digit"):
        text = str(rng.choice(list(LETTERS if task == "letter" else DIGITS)))
        (box,) = _free_cells(rng, 1, everywhere, everywhere)
        _draw_label(canvas, box, text, rng, size=int(rng.integers(18, 22)))
        return text, box.cells(), [f"{task}:{text}"]
    if task == "word":
        word = str(rng.choice(WORDS))
        (box,) = _free_cells(rng, 1, everywhere, everywhere, width=2)
        _draw_label(canvas, box, word, rng, size=int(rng.integers(15, 18)))
        return word, box.cells(), [f"word:{word}:0", f"word:{word}:1"]
    if task in ("color", "shape"):
        color = str(rng.choice(list(COLORS)))
        (box,) = _free_cells(rng, 1, everywhere, everywhere)
        kind = _draw_shape(canvas, box, color, rng)
        return (color if task == "color" else kind), box.cells(), [f"shape:{color}:{kind}"]
    if task == "count":
        n = int(rng.integers(1, MAX_COUNT + 1))
        boxes = _free_cells(rng, n, everywhere, everywhere, halo=grid >= 8)
        colors = [str(rng.choice(list(COLORS))) for _ in boxes]
        kinds = [_draw_shape(canvas, box, color, rng) for box, color in zip(boxes, colors)]
        return str(n), [c for b in boxes for c in b.cells()], [f"shape:{c}:{k}" for c, k in zip(colors, kinds)]
    raise ValueError(f"unknown task {task!r}")  # pragma: no cover


def items_by(items: Iterable[Item], key: str) -> dict[str, list[Item]]:
    """Group items by a metadata key (``task``, ``background`` or ``complexity``)."""
    out: dict[str, list[Item]] = {}
    for item in items:
        out.setdefault(str(item.metadata[key]), []).append(item)
    return out


CALIBRATION_ITEMS = 72  # every task x background, twice
HELDOUT_ITEMS = 360  # every task x background, 10 each (the demo's quality bars use the same 360)


def _load(*, data_dir: str | None = None, limit: int | None = None, seed: int = 0) -> list[Item]:
    return calibration_items(CALIBRATION_ITEMS if limit is None else limit, seed=seed)  # generated: data_dir does not apply


def _heldout(*, data_dir: str | None = None, limit: int | None = None, seed: int = 0) -> list[Item]:
    return heldout_items(HELDOUT_ITEMS if limit is None else limit, seed=seed)


SOURCE = register(TaskSource(BENCHMARK, "demo tasks", _load, score, evaluation=False, heldout=_heldout))
