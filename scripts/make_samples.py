"""Write tiny synthetic stand-ins of the ten benchmarks, in each real dataset's schema.

    python scripts/make_samples.py OUT_DIR [--seed N]

A development tool of the checkout, not part of the installed package: the files it wrote ship
in data_samples/benchmarks/.

writes OUT_DIR/<benchmark>.parquet (3-5 rows each) and OUT_DIR/README.md. The
rows are invented and the images drawn with PIL (`synthetic_images`), so every
loader, prompt builder and scorer can run without the real data. Column names
and types follow the real datasets; image columns are stored the way Hugging
Face stores them (a struct of PNG bytes and a path) with the `datasets`
feature metadata, and every file carries the parquet key-value metadata
``erase_synthetic=true``. The output depends only on the seed (and the
installed Pillow, which draws the text).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

if __package__ in (None, ""):  # run as a script: its folder holds synthetic_images.py
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import synthetic_images as art
else:
    from . import synthetic_images as art

from erase_calibrate.tasks.benchmarks import BENCHMARKS
from erase_calibrate.tasks.benchmarks.loading import SYNTHETIC_MARK
from erase_calibrate.tasks.benchmarks.options import LETTERS

Rows = list[dict[str, Any]]


def _image(im) -> dict[str, Any]:
    return {"bytes": art.png_bytes(im), "path": None}


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _shuffled(rng: np.random.Generator, seq) -> list:
    return [seq[int(i)] for i in rng.permutation(len(seq))]


def _listing(options) -> str:
    return "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))


# --- one builder per benchmark: (features, rows) --------------------------------


def infovqa(rng: np.random.Generator):
    from datasets import Features, Image, List, Value

    features = Features(
        {
            "questionId": Value("string"),
            "question": Value("string"),
            "answers": List(Value("string")),
            "answer_type": List(Value("string")),
            "image": Image(),
            "image_url": Value("string"),
            "operation/reasoning": List(Value("string")),
            "ocr": Value("string"),
            "data_split": Value("string"),
        }
    )
    share = int(rng.integers(40, 90))
    lanes = int(rng.integers(300, 2000))
    growth = int(rng.integers(2, 6))
    bikes = art.infographic(
        "CITY CYCLING",
        [
            (f"{share}%", "of adults cycle weekly", "green"),
            (f"{lanes:,} km", "of bike lanes", "blue"),
            (f"{growth}x", "more riders than 2014", "orange"),
        ],
    )
    water = int(rng.integers(5, 9))
    litres = int(rng.integers(120, 200))
    health = art.infographic(
        "DRINK WATER", [(f"{water} glasses", "a day for adults", "blue"), (f"{litres} L", "used per person daily", "purple")]
    )
    rows = [
        ("What percentage of adults cycle weekly?", [f"{share}%"], ["single span"], [], bikes),
        ("How many kilometres of bike lanes are there?", [f"{lanes:,} km", f"{lanes:,}", str(lanes)], ["single span"], [], bikes),
        ("How many glasses of water a day are suggested for adults?", [str(water), f"{water} glasses"], ["single span"], [], health),
        ("How many times more riders are there than in 2014?", [f"{growth}x", f"{growth} times"], ["single span"], ["comparison"], bikes),
    ]
    out = []
    for k, (question, answers, answer_type, reasoning, im) in enumerate(rows):
        out.append(
            {
                "questionId": str(90001 + k),
                "question": question,
                "answers": answers,
                "answer_type": answer_type,
                "image": _image(im),
                "image_url": f"synthetic://infovqa/{k}.png",
                "operation/reasoning": reasoning,
                "ocr": "",
                "data_split": "val",
            }
        )
    return features, out


def docvqa(rng: np.random.Generator):
    from datasets import Features, Image, List, Value

    features = Features(
        {
            "questionId": Value("string"),
            "question": Value("string"),
            "question_types": List(Value("string")),
            "image": Image(),
            "docId": Value("int64"),
            "ucsf_document_id": Value("string"),
            "ucsf_document_page_no": Value("string"),
            "answers": List(Value("string")),
            "data_split": Value("string"),
        }
    )
    number = int(rng.integers(1000, 9999))
    day = int(rng.integers(1, 28))
    total = int(rng.integers(100, 5000))
    invoice = art.document_page(
        "INVOICE",
        [
            f"Invoice No. {number}",
            f"Date: {day} March 1998",
            "Bill to: Acme Labs Inc.",
            "Item: lab glassware",
            f"Total: ${total:,}.00",
            "Thank you for your order.",
        ],
    )
    sender = _pick(rng, ["J. Miller", "R. Okafor", "S. Lindqvist"])
    memo = art.document_page(
        "MEMORANDUM",
        ["To: All staff", f"From: {sender}", "Re: Office move", "The office moves to", "Building C on Monday.", "Please pack your desks."],
    )
    rows = [
        ("What is the invoice number?", [str(number)], ["form"], invoice, 501),
        ("What is the total amount?", [f"${total:,}.00", f"{total:,}.00"], ["form"], invoice, 501),
        ("Who sent the memorandum?", [sender], ["layout"], memo, 502),
        ("Which building does the office move to?", ["Building C", "C"], ["free_text"], memo, 502),
    ]
    out = []
    for k, (question, answers, qtypes, im, doc) in enumerate(rows):
        out.append(
            {
                "questionId": str(50001 + k),
                "question": question,
                "question_types": qtypes,
                "image": _image(im),
                "docId": doc,
                "ucsf_document_id": f"syn{doc:04d}",
                "ucsf_document_page_no": "1",
                "answers": answers,
                "data_split": "val",
            }
        )
    return features, out


def chartqa(rng: np.random.Generator):
    from datasets import Features, Image, Value

    features = Features(
        {"type": Value("string"), "question": Value("string"), "answer": Value("string"), "image": Image()}
    )
    drinks = ["Tea", "Coffee", "Juice", "Water"]
    values = [int(v) for v in rng.choice(np.arange(5, 60), size=4, replace=False)]
    bars = art.bar_chart("Favourite drink (votes)", drinks, values)
    shares = [int(v) for v in rng.choice(np.arange(10, 40), size=3, replace=False)]
    parties = ["North", "South", "East"]
    pct = art.bar_chart("Sales share by region", parties, shares, suffix="%", colour="orange")
    top = drinks[int(np.argmax(values))]
    rows = [
        ("human_test", f"How many votes did {drinks[1]} get?", str(values[1]), bars),
        ("human_test", "Which drink got the most votes?", top, bars),
        (
            "augmented_test",
            "What is the difference between the highest and the lowest number of votes?",
            str(max(values) - min(values)),
            bars,
        ),
        ("augmented_test", f"What share of sales does the {parties[0]} region have?", f"{shares[0]}%", pct),
    ]
    return features, [{"type": t, "question": q, "answer": a, "image": _image(im)} for t, q, a, im in rows]


def ocrbench(rng: np.random.Generator):
    from datasets import Features, Image, List, Value

    features = Features(
        {
            "dataset": Value("string"),
            "question": Value("string"),
            "question_type": Value("string"),
            "answer": List(Value("string")),
            "image": Image(),
        }
    )
    word = _pick(rng, ["HARBOR", "LANTERN", "MEADOW", "CITADEL"])
    digits = "".join(str(int(d)) for d in rng.integers(0, 10, size=5))
    hours = int(rng.choice([12, 16, 24]))
    price = f"{int(rng.integers(3, 40))}.{int(rng.integers(10, 99))}"
    a, b = int(rng.integers(2, 9)), int(rng.integers(2, 9))
    formula = ["x", "^2", "+", f"{a}x", "=", str(b)]
    wobble = [int(v) for v in rng.integers(-4, 5, size=len(formula))]
    rows = [
        ("IIIT5K", "what is written in the image?", "Regular Text Recognition", [word], art.word_image(word)),
        (
            "ORAND",
            "what is the number in the image?",
            "Digit String Recognition",
            [digits],
            art.word_image(digits, fg="blue", bg=(255, 255, 255)),
        ),
        (
            "STVQA",
            "how many hours a day is the shop open?",
            "Scene Text-centric VQA",
            [str(hours)],
            art.street_sign(f"OPEN {hours} H", board="green"),
        ),
        (
            "SROIE",
            "what is the total amount of this receipt? Answer this question using the text in the image directly.",
            "Key Information Extraction",
            [price],
            art.document_page("RECEIPT", ["Bread   2.10", "Milk    1.30", f"TOTAL   {price}", "CASH"], size=(200, 160)),
        ),
        (
            "HME100k",
            "Please write out the expression of the formula in the image using LaTeX format.",
            "Handwritten Mathematical Expression Recognition",
            [f"x ^ {{ 2 }} + {' '.join(f'{a}x')} = {b}"],
            art.handwritten_formula(formula, wobble),
        ),
    ]
    return features, [
        {"dataset": d, "question": q, "question_type": t, "answer": ans, "image": _image(im)} for d, q, t, ans, im in rows
    ]


def textvqa(rng: np.random.Generator):
    from datasets import Features, Image, List, Value

    features = Features(
        {
            "image_id": Value("string"),
            "question_id": Value("int32"),
            "question": Value("string"),
            "question_tokens": List(Value("string")),
            "image": Image(),
            "image_width": Value("int32"),
            "image_height": Value("int32"),
            "flickr_original_url": Value("string"),
            "flickr_300k_url": Value("string"),
            "answers": List(Value("string")),
            "image_classes": List(Value("string")),
            "set_name": Value("string"),
            "ocr_tokens": List(Value("string")),
        }
    )
    street = _pick(rng, ["ELM ST", "OAK AVE", "MAIN ST"])
    speed = int(rng.choice([20, 30, 40]))
    rows = [
        ("what does the red sign say?", art.street_sign("STOP"), ["stop"] * 8 + ["stop sign", "STOP"], ["Street sign"], ["STOP"]),
        (
            "what street is this?",
            art.street_sign(street, board="green"),
            [street.lower()] * 7 + [street.split()[0].lower()] * 2 + ["unanswerable"],
            ["Street sign"],
            street.split(),
        ),
        (
            "what is the speed limit?",
            art.street_sign(f"LIMIT {speed}", board="blue"),
            [str(speed)] * 9 + [f"{speed} mph"],
            ["Traffic sign"],
            ["LIMIT", str(speed)],
        ),
    ]
    out = []
    for k, (question, im, answers, classes, ocr) in enumerate(rows):
        out.append(
            {
                "image_id": rng.bytes(8).hex(),
                "question_id": 34602 + k,
                "question": question,
                "question_tokens": question.rstrip("?").split() + ["?"],
                "image": _image(im),
                "image_width": im.width,
                "image_height": im.height,
                "flickr_original_url": f"synthetic://textvqa/{k}.png",
                "flickr_300k_url": f"synthetic://textvqa/{k}.png",
                "answers": answers,
                "image_classes": classes,
                "set_name": "val",
                "ocr_tokens": ocr,
            }
        )
    return features, out


def realworldqa(rng: np.random.Generator):
    from datasets import Features, Image, Value

    features = Features({"image": Image(), "question": Value("string"), "answer": Value("string")})
    colours = ["red", "blue", "gray", "green", "yellow"]
    reds = int(rng.integers(1, 4))
    cars = ["red"] * reds + [_pick(rng, colours[1:]) for _ in range(4 - reds)]
    cars = _shuffled(rng, cars)
    light = _pick(rng, ["red", "green"])
    scene = art.street_scene(cars, light)
    counts = [1, 2, 3]
    letter_only = "Please answer directly with only the letter of the correct option and nothing else."
    word_only = "Please answer directly with a single word or number."
    side_opts = ["left", "right"]
    rows = [
        (
            "How many red cars are in the image?\n" + _listing(counts) + "\n" + letter_only,
            LETTERS[counts.index(reds)],
        ),
        ("Is the traffic light green?\n" + word_only, "Yes" if light == "green" else "No"),
        ("How many cars are on the road?\n" + word_only, str(len(cars))),
        (
            "On which side of the image is the traffic light?\n" + _listing(side_opts) + "\n" + letter_only,
            "B",
        ),
    ]
    return features, [{"image": _image(scene), "question": q, "answer": a} for q, a in rows]


def mmstar(rng: np.random.Generator):
    from datasets import Features, Image, Value

    features = Features(
        {
            "index": Value("int64"),
            "question": Value("string"),
            "image": Image(),
            "answer": Value("string"),
            "category": Value("string"),
            "l2_category": Value("string"),
            "meta_info": {"source": Value("string"), "split": Value("string"), "image_path": Value("string")},
        }
    )
    kinds = _shuffled(rng, ["circle", "square", "triangle"])
    colours = _shuffled(rng, ["red", "green", "blue", "yellow"])
    radii = [22, 34, 48]
    layout = [(kinds[i], colours[i], (48 + 80 * i, 96), radii[i]) for i in range(3)]
    im = art.shapes(layout)
    largest = kinds[2]
    shape_opts = ["circle", "square", "triangle", "star"]
    colour_opts = ["red", "green", "blue", "yellow"]
    square_colour = colours[kinds.index("square")]
    n_opts = ["1", "2", "3", "4"]
    rows = [
        ("Which shape is the largest in the image?", shape_opts, largest, "coarse perception", "image scene and topic"),
        ("What colour is the square?", colour_opts, square_colour, "fine-grained perception", "attribute recognition"),
        ("How many shapes are there in the image?", n_opts, "3", "fine-grained perception", "object counting"),
        (f"Which shape is right of the {kinds[0]}?", shape_opts, kinds[1], "instance reasoning", "relation reasoning"),
    ]
    out = []
    for k, (question, opts, right, cat, l2) in enumerate(rows):
        listing = ", ".join(f"{LETTERS[i]}: {o}" for i, o in enumerate(opts))
        out.append(
            {
                "index": k,
                "question": f"{question}\nOptions: {listing}",
                "image": _image(im),
                "answer": LETTERS[opts.index(right)],
                "category": cat,
                "l2_category": l2,
                "meta_info": {"source": "synthetic", "split": "val", "image_path": f"images/{k}.png"},
            }
        )
    return features, out


def mmbench(rng: np.random.Generator):
    from datasets import Features, Image, Value

    features = Features(
        {
            "index": Value("int64"),
            "question": Value("string"),
            "hint": Value("string"),
            "answer": Value("string"),
            "A": Value("string"),
            "B": Value("string"),
            "C": Value("string"),
            "D": Value("string"),
            "category": Value("string"),
            "image": Image(),
            "source": Value("string"),
            "L2-category": Value("string"),
            "comment": Value("string"),
            "split": Value("string"),
        }
    )
    colour = _pick(rng, ["red", "green", "blue"])
    n = int(rng.integers(2, 5))
    dots = art.shapes([("circle", colour, (40 + 56 * i, 96), 18) for i in range(n)])
    poster = art.word_image("SALE", fg="red", bg=(255, 255, 255), size=(200, 100))
    tri = art.shapes([("triangle", "yellow", (128, 96), 60)])
    fine = "finegrained_perception (instance-level)"
    rows = [
        (None, "What colour are the circles?", ["red", "green", "blue", "yellow"], colour, dots, "attribute_recognition", fine),
        ("The picture shows a row of dots.", "How many circles are there?", ["2", "3", "4", "5"], str(n), dots, "object_localization", fine),
        (
            "A shop window poster.",
            "What does the poster most likely announce?",
            ["a sale", "a closure", "a wedding", None],
            "a sale",
            poster,
            "image_topic",
            "coarse_perception",
        ),
        (None, "Which shape is shown?", ["circle", "triangle", "square", None], "triangle", tri, "image_scene", "coarse_perception"),
    ]
    out = []
    for k, (hint, question, opts, right, im, cat, l2) in enumerate(rows):
        row = {
            "index": 100 + k,
            "question": question,
            "hint": hint,
            "answer": LETTERS[opts.index(right)],
            "category": cat,
            "image": _image(im),
            "source": "synthetic",
            "L2-category": l2,
            "comment": None,
            "split": "dev",
        }
        row.update({LETTERS[i]: o for i, o in enumerate(opts)})
        out.append(row)
    return features, out


def vstar(rng: np.random.Generator):
    from datasets import Features, Image, Value

    features = Features(
        {
            "image": Image(),
            "text": Value("string"),
            "label": Value("string"),
            "question_id": Value("string"),
            "category": Value("string"),
        }
    )
    instruction = "Answer with the option's letter from the given choices directly."
    umbrella = _pick(rng, ["red", "blue", "green", "yellow"])
    ball_left = bool(rng.integers(2))
    scene = art.shapes(
        [
            ("triangle", umbrella, (60, 50), 10),
            ("circle", "orange", (40 if ball_left else 216, 150), 8),
            ("square", "gray", (128, 150), 14),
        ],
        size=(320, 240),
    )
    colour_opts = _shuffled(rng, ["red", "blue", "green", "yellow"])
    side_opts = ["left", "right"]
    ball_side = "left" if ball_left else "right"
    rows = [
        ("direct_attributes", "What is the color of the small triangle?", colour_opts, umbrella),
        ("relative_position", "Is the orange ball on the left or right side of the gray box?", side_opts, ball_side),
        ("direct_attributes", "What is the shape of the gray object?", ["circle", "square", "triangle", "star"], "square"),
    ]
    out = []
    for k, (category, question, opts, right) in enumerate(rows):
        listing = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(opts))
        out.append(
            {
                "image": _image(scene),
                "text": f"{question}\n{listing}\n{instruction}",
                "label": LETTERS[opts.index(right)],
                "question_id": f"sa_{7000 + k}",
                "category": category,
            }
        )
    return features, out


def mathvista(rng: np.random.Generator):
    from datasets import Features, Image, List, Value

    features = Features(
        {
            "pid": Value("string"),
            "question": Value("string"),
            "image": Value("string"),
            "decoded_image": Image(),
            "choices": List(Value("string")),
            "unit": Value("string"),
            "precision": Value("float64"),
            "answer": Value("string"),
            "question_type": Value("string"),
            "answer_type": Value("string"),
            "metadata": {
                "category": Value("string"),
                "context": Value("string"),
                "grade": Value("string"),
                "img_height": Value("int64"),
                "img_width": Value("int64"),
                "language": Value("string"),
                "skills": List(Value("string")),
                "source": Value("string"),
                "split": Value("string"),
                "task": Value("string"),
            },
            "query": Value("string"),
        }
    )
    values = [int(v) for v in rng.choice(np.arange(2, 10), size=4, replace=False)]
    bars = art.bar_chart("Apples picked", ["Mon", "Tue", "Wed", "Thu"], values, colour="green")
    cards = [int(v) for v in rng.integers(1, 10, size=3)]
    mean = sum(cards) / 3
    p1, p2 = int(rng.integers(50, 300)), int(rng.integers(50, 300))
    years = list(range(2004, 2011))
    peak = int(rng.integers(1, len(years) - 2))
    series = [3.0 + i * 0.2 for i in range(len(years))]
    series[peak] = series[peak + 1] = 9.0
    tags = art.price_tags([("Pen", f"${p1 / 100:.2f}"), ("Pad", f"${p2 / 100:.2f}")])
    line = art.line_chart("Index value", years, series)
    arith, stats = ["arithmetic reasoning"], ["statistical reasoning"]
    # question, image, choices, unit, precision, answer, question_type, answer_type, context, skills
    rows = [
        ("What is the highest number of apples picked on a single day?", bars, None, None, None, str(max(values)),
         "free_form", "integer", "bar chart", stats),
        ("In the right triangle shown, what is the measure of angle x?", art.triangle_figure("x"),
         ["30°", "45°", "60°", "90°"], None, None, "45°", "multi_choice", "text", "geometry diagram", ["geometry reasoning"]),
        ("What is the average of the numbers on the cards?", art.number_cards(cards), None, None, 1.0, f"{mean:.1f}",
         "free_form", "float", "abstract scene", arith),
        ("How much do the two items cost together?", tags, None, "$", 2.0, f"{(p1 + p2) / 100:.2f}",
         "free_form", "float", "table", arith),
        ("Between which two years does the line reach its maximum?", line, None, None, None,
         f"[{years[peak]}, {years[peak + 1]}]", "free_form", "list", "line plot", stats),
    ]
    out = []
    for k, (question, im, choices, unit, precision, answer, qtype, atype, context, skills) in enumerate(rows):
        query = f"Hint: {_mathvista_query_hint(qtype, atype, precision)}\nQuestion: {question}"
        if unit:
            query += f" (Unit: {unit})"
        if choices:
            query += "\nChoices:\n" + "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))
        out.append(
            {
                "pid": str(k + 1),
                "question": question,
                "image": f"images/{k + 1}.png",
                "decoded_image": _image(im),
                "choices": choices,
                "unit": unit,
                "precision": precision,
                "answer": answer,
                "question_type": qtype,
                "answer_type": atype,
                "metadata": {
                    "category": "math-targeted-vqa",
                    "context": context,
                    "grade": "elementary school",
                    "img_height": im.height,
                    "img_width": im.width,
                    "language": "english",
                    "skills": skills,
                    "source": "synthetic",
                    "split": "testmini",
                    "task": "figure question answering",
                },
                "query": query,
            }
        )
    return features, out


def _mathvista_query_hint(question_type: str, answer_type: str, precision: float | None) -> str:
    # The real `query` column carries a hint of this kind; the wording here is our own.
    if question_type == "multi_choice":
        return "Give the letter of the correct option at the end of your answer."
    if answer_type == "float":
        return f"Give a decimal number with {int(precision or 1)} decimal place(s) at the end of your answer."
    if answer_type == "list":
        return "Give a Python list at the end of your answer."
    return "Give a whole number at the end of your answer."


BUILDERS: dict[str, Callable[[np.random.Generator], tuple[Any, Rows]]] = {
    "infovqa": infovqa,
    "docvqa": docvqa,
    "chartqa": chartqa,
    "ocrbench": ocrbench,
    "textvqa": textvqa,
    "realworldqa": realworldqa,
    "mmstar": mmstar,
    "mmbench": mmbench,
    "vstar": vstar,
    "mathvista": mathvista,
}


# --- writing ------------------------------------------------------------------------


def write_samples(out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Write every stand-in and the README into `out_dir`; returns the files written."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    counts = {}
    for offset, (name, build) in enumerate(BUILDERS.items()):
        rng = np.random.default_rng([seed, offset])
        features, rows = build(rng)
        table = Dataset.from_list(rows, features=features).data.table.select(list(features))
        meta = json.loads(table.schema.metadata[b"huggingface"])
        _old_style_sequences(meta)
        table = table.replace_schema_metadata(
            {b"huggingface": json.dumps(meta).encode(), SYNTHETIC_MARK: b"true", b"erase_seed": str(seed).encode()}
        )
        path = out / f"{name}.parquet"
        pq.write_table(table, path, compression="snappy")
        written.append(path)
        counts[name] = len(rows)
    readme = out / "README.md"
    readme.write_text(_readme(counts, seed), encoding="utf-8")
    written.append(readme)
    return written


def _old_style_sequences(meta: Any) -> None:
    # Write lists of values as `Sequence`, the form the real datasets' metadata uses,
    # so older `datasets` releases read the files too.
    if isinstance(meta, dict):
        if meta.get("_type") == "List":
            meta["_type"] = "Sequence"
        for value in meta.values():
            _old_style_sequences(value)
    elif isinstance(meta, list):
        for value in meta:
            _old_style_sequences(value)


def _readme(counts: dict[str, int], seed: int) -> str:
    lines = [
        "# Benchmark stand-ins (SYNTHETIC)",
        "",
        "**Everything in this folder is synthetic.** The questions and answers are invented and the",
        "images are drawn with PIL (text on a page, bar charts drawn with rectangles, shapes). They",
        "are not samples of the real datasets and say nothing about model accuracy; they exist so",
        "that every benchmark loader, prompt builder and scorer runs offline (`tests/test_benchmarks.py`).",
        "",
        "Each file holds 3-5 rows in the schema of the real dataset (same column names and types;",
        "image columns stored as Hugging Face stores them, a struct of PNG bytes and a path) and",
        "carries the parquet key-value metadata `erase_synthetic=true`, which the loader turns into",
        "`item.metadata[\"synthetic\"] = True`.",
        "",
        "| file | stands in for | dataset id (config) / split | rows |",
        "|---|---|---|---|",
    ]
    for name, n in counts.items():
        b = BENCHMARKS[name]
        config = f" ({b.config})" if b.config else ""
        lines.append(f"| `{name}.parquet` | {b.title} | {b.dataset_ids[0]}{config} / {b.split} | {n} |")
    lines += [
        "",
        "Regenerate (deterministic for a given seed and Pillow version):",
        "",
        "```bash",
        f"python scripts/make_samples.py data_samples/benchmarks --seed {seed}",
        "```",
        "",
        "Load them like real data with `load_items(NAME, data_dir=\"data_samples/benchmarks\")`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/make_samples.py",
        description="Write tiny synthetic stand-ins of the benchmarks in their real schemas.",
    )
    parser.add_argument("out_dir", help="folder to write <benchmark>.parquet and README.md into")
    parser.add_argument("--seed", type=int, default=0, help="seed of the invented values (default 0)")
    args = parser.parse_args(argv)
    try:
        for path in write_samples(args.out_dir, args.seed):
            print(path)
    except OSError as exc:
        print(f"make_samples: error: {args.out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
