"""A user's own calibration data, in the `datasets` library's conventions.

`--dataset PATH_OR_HUB_ID` names one of:

- an **imagefolder**: a folder of images with a ``metadata.jsonl`` (or
  ``metadata.csv``) whose rows hold ``file_name`` (relative to the folder),
  ``question``, ``answers`` (a list; a plain ``answer`` string also works) and
  optionally ``choices`` (a list of option texts). Loaded with
  ``datasets.load_dataset("imagefolder", data_dir=PATH)``;
- a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``
  (loaded with ``datasets.load_from_disk``), with an ``image`` column and the
  same question and answer columns;
- a hub dataset id (``org/name``), loaded with ``datasets.load_dataset``.

A dataset with several splits uses its only split, else the first of
validation, test, train that it has. The prompt is the question as given, or
``--prompt-template`` (a Python format string with ``{question}`` and, for
items with choices, ``{choices}``: one ``A. text`` line per option). Scorers
(``--scorer``), all the benchmarks' own rules (scoring.py):

- ``exact``: equal to a reference after lowercasing, trimming and dropping trailing periods (RealWorldQA's rule);
- ``vqa``: the TextVQA rule (EvalAI normalisation, min(1, matches / 3) over
  leave-one-out subsets) when an item has 4 or more references; with fewer, a
  normalised answer equal to any reference (the leave-one-out rule needs
  several annotators: with one reference it can never score);
- ``anls``: ANLS (DocVQA, InfoVQA), 0 below 0.5;
- ``relaxed``: ChartQA's relaxed accuracy (numbers within 5%);
- ``choice``: the option letter read from the answer, against the key (the
  answer may be given as a letter or as an option's text).

An item counts as answered correctly at a score of 0.5 or more. Every row of
the sample is checked before the model runs: a missing column, an unreadable
image (its file is named) and an empty dataset are one-line errors.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from erase import EraseError

from .items import Item, decode_rgb
from .registry import register_item_rule
from .benchmarks.loading import _first_line, _undecoded_images
from .benchmarks.multiple_choice import multiple_choice_score
from .benchmarks.options import format_options, letters_for
from .benchmarks.rows import answer_values, image_value, is_present, text_value
from .benchmarks.sampling import item_ids, sample_order
from .benchmarks.scoring import anls, exact_match, relaxed_accuracy, vqa_accuracy
from .benchmarks.vqa_normalize import normalize_vqa_answer

SCORERS = ("exact", "vqa", "anls", "relaxed", "choice")
SPLITS = ("validation", "test", "train")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class OwnDataset:
    """One --dataset: where it is, what it is called in the profile, how it is prompted and scored."""

    source: str
    name: str
    scorer: str = "vqa"
    template: str | None = None

    def spec(self) -> str:
        """What changes its items or their scores (part of the base-answer cache key and the study setup)."""
        return f"dataset:{self.source}:{self.scorer}:{self.template or ''}"


def describe(sources: list[str], scorer: str, template: str | None, taken: set[str]) -> list[OwnDataset]:
    """Name each --dataset (its folder or repository name, made unique) and check scorer and template."""
    if scorer not in SCORERS:
        raise EraseError(f"--scorer must be one of {', '.join(SCORERS)}, got {scorer!r}")
    if template is not None:
        check_template(template)
    out = []
    names = set(taken)
    for src in sources:
        base = re.sub(r"[^a-z0-9.\-]+", "-", Path(src.rstrip("/")).name.lower()).strip("-") or "dataset"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.add(name)
        out.append(OwnDataset(src, name, scorer, template))
    return out


def check_template(template: str) -> None:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise EraseError(f"--prompt-template {template!r}: {exc}") from None
    unknown = sorted(fields - {"question", "choices"})
    if unknown:
        raise EraseError(f"--prompt-template {template!r}: unknown field(s) {', '.join('{' + f + '}' for f in unknown)}; "
                         "use {question} and {choices}")
    if "question" not in fields:
        raise EraseError(f"--prompt-template {template!r} has no {{question}}")


# ----------------------------------------------------------------------------- loading
def load_items(ds: OwnDataset, *, limit: int | None, seed: int) -> list[Item]:
    """Up to `limit` seeded items of a dataset, every one checked (columns, answers, image decodes)."""
    dataset, where = _open(ds.source)
    cols = set(dataset.column_names)
    answer_col = "answers" if "answers" in cols else "answer" if "answer" in cols else None
    image_col = "image" if "image" in cols else None
    missing = [c for c, have in (("image", image_col), ("question", "question" in cols), ("answers", answer_col)) if not have]
    if missing:
        what = "image (or file_name in metadata.jsonl)" if missing == ["image"] else ", ".join(missing)
        if "answers" in missing:
            what = what.replace("answers", "answers (or answer)")
        raise EraseError(f"{where}: no column {what} (columns: {', '.join(sorted(cols)) or 'none'})")
    if len(dataset) == 0:
        raise EraseError(f"{where}: the dataset is empty")
    dataset = _undecoded_images(dataset, image_col)
    keep = ["question", *(c for c in ("answers", "answer", "choices") if c in cols)]
    table = dataset.select_columns(keep).to_dict()
    prompts, keys = [], []
    for r in range(len(dataset)):
        row = {c: table[c][r] for c in keep}
        prompts.append(row)
        keys.append(_row_key(row))
    ids = item_ids(keys, ds.name)
    items = []
    for index in sample_order(keys, limit, seed):
        row = {**prompts[index], "image": dataset[int(index)][image_col]}
        items.append(_item(ds, row, ids[index], where, int(index)))
    return items


def _row_key(row: dict[str, Any]) -> str:
    blob = repr((row.get("question"), _answers(row), row.get("choices")))
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()


def _answers(row: dict[str, Any]) -> Any:
    """`answers` where the row has them, else `answer` (a folder may mix the two)."""
    value = row.get("answers")
    return value if is_present(value) else row.get("answer")


def _item(ds: OwnDataset, row: dict[str, Any], item_id: str, where: str, index: int) -> Item:
    image = row["image"]
    path = image.get("path") if isinstance(image, dict) else None
    what = path or f"{where} row {index}"
    data = image_value(image, what)
    decode_rgb(data, what)  # an unreadable image is an error now, naming its file
    question = text_value(row.get("question"))
    if question is None:
        raise EraseError(f"{where} row {index}: empty question")
    refs = answer_values(_answers(row))
    if not refs:
        raise EraseError(f"{where} row {index} ({path or 'no file'}): no answer")
    options = letters_for([str(c) for c in row["choices"]]) if is_present(row.get("choices")) else {}
    if ds.scorer == "choice":
        if not options:
            raise EraseError(f"{where} row {index}: --scorer choice needs a choices column with the options")
        refs = tuple(_as_letter(r, options, f"{where} row {index}") for r in refs)
    prompt = question if ds.template is None else ds.template.format(
        question=question, choices=format_options(options) if options else ""
    )
    digest = hashlib.sha256(_bytes(data) + prompt.encode() + repr((refs, sorted(options.items()))).encode()).hexdigest()[:16]
    return Item(
        benchmark=ds.name, id=f"{item_id}-{digest}", question=question, prompt=prompt, references=refs,
        image_data=data, options=options, metadata={"scorer": ds.scorer, "source": ds.source, "file": path},
    )


def _bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    return data.tobytes()  # a PIL image


def _as_letter(ref: str, options: dict[str, str], where: str) -> str:
    key = ref.strip().strip("()").rstrip(".").strip().upper()
    if key in options:
        return key
    for letter, text in options.items():
        if ref.strip().lower() == text.strip().lower():
            return letter
    raise EraseError(f"{where}: answer {ref!r} is neither an option letter ({', '.join(sorted(options))}) nor an option's text")


def _open(source: str) -> tuple[Any, str]:
    import datasets

    datasets.disable_progress_bars()  # stderr is for the one-line error
    path = Path(source)
    try:
        if path.is_dir():
            if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
                loaded = datasets.load_from_disk(str(path))
            else:
                if not any(p.is_file() and not p.name.startswith("metadata.") for p in path.rglob("*")):
                    raise EraseError(f"--dataset {source}: the dataset is empty (no image files)")
                loaded = datasets.load_dataset("imagefolder", data_dir=str(path))
        elif path.exists():
            raise EraseError(f"--dataset {source}: not a folder (an imagefolder, a save_to_disk folder, or a hub id)")
        elif _HUB_ID.match(source) and not source.startswith((".", "/")):
            loaded = datasets.load_dataset(source)
        else:
            raise EraseError(f"--dataset {source}: no such folder")
    except EraseError:
        raise
    except Exception as exc:  # datasets and pyarrow fail in many ways; one line for the user
        raise EraseError(f"--dataset {source}: cannot load it: {_first_line(exc)}") from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if not splits:
            raise EraseError(f"--dataset {source}: the dataset is empty")
        split = splits[0] if len(splits) == 1 else next((s for s in SPLITS if s in loaded), splits[0])
        return loaded[split], f"{source} ({split})"
    return loaded, source


# ----------------------------------------------------------------------------- scoring
def _vqa(prediction: str, refs: tuple[str, ...]) -> float:
    if len(refs) >= 4:
        return vqa_accuracy(prediction, refs)
    pred = normalize_vqa_answer(prediction)
    return 1.0 if any(pred == normalize_vqa_answer(r) for r in refs) else 0.0


_SCORE: dict[str, Callable[[str, Item], float]] = {
    "exact": lambda p, it: exact_match(p, it.references),
    "vqa": lambda p, it: _vqa(p, it.references),
    "anls": lambda p, it: anls(p, it.references),
    "relaxed": lambda p, it: max((relaxed_accuracy(p, r) for r in it.references), default=0.0),
    "choice": lambda p, it: multiple_choice_score(p, it.answer, it.options),
}


def is_own(item: Item) -> bool:
    return item.metadata.get("scorer") in _SCORE and "source" in item.metadata


def score(item: Item, prediction: str) -> float:
    return float(_SCORE[item.metadata["scorer"]](prediction, item))


register_item_rule(is_own, score)

__all__ = ["OwnDataset", "SCORERS", "describe", "is_own", "load_items", "score"]
