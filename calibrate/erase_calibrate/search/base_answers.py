"""Calibration items: the ones the unpruned model answers correctly, with cached base answers.

Base answers are cached on disk, keyed by model, revision, benchmark, processor
pixel range and decoding length: one small JSON file per answered item, written
as it comes (an interrupted run keeps what it computed) and atomically (temp
file, then rename). Workers on one machine sharing OUT therefore share the
cache safely: a reader never sees half an entry, two workers answering the same
item write the same content and the last rename wins, and each picks up the
other's answers as they appear. Workers on other machines compute their own;
greedy decoding with the same seed, data and model keeps the same items (the
study checks that, see record.save_items).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from erase import EraseError
from erase.fileio import atomic_write

from ..tasks.answering import Answer, greedy_answers, item_inputs

CORRECT = 0.5  # a score at or above this counts as answered correctly (binary metrics give 0 or 1)
CACHE_FORMAT = 1  # part of the key: a change of what an entry means starts a new cache


@dataclass(frozen=True)
class CalibrationItem:
    item: Any
    answer: Answer
    score: float


def cache_key(model_id: str, revision: str | None, benchmark: str, min_pixels: Any, max_pixels: Any, max_new_tokens: int) -> str:
    blob = json.dumps(
        [CACHE_FORMAT, model_id, revision, benchmark, min_pixels, max_pixels, max_new_tokens], sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class AnswerCache:
    """A folder per key, one ``{"id", "text", "tokens", "score"}`` JSON file per answered item."""

    def __init__(self, folder: Path, key: str, label: str):
        self.dir = Path(folder) / f"{label}-{key}"
        self.entries: dict[str, dict] = {}
        legacy = Path(folder) / f"{label}-{key}.jsonl"  # the single-file format of earlier versions
        if legacy.is_file():
            for line in legacy.read_text(encoding="utf-8").splitlines():
                self._keep(line)
        if self.dir.is_dir():
            for path in self.dir.glob("*.json"):
                self._keep(_read(path))

    def _keep(self, text: str | None) -> dict | None:
        try:
            rec = json.loads(text or "")
            self.entries[str(rec["id"])] = rec
            return rec
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: recomputed

    def _path(self, item_id: Any) -> Path:
        return self.dir / f"{hashlib.sha256(str(item_id).encode()).hexdigest()[:24]}.json"

    def get(self, item_id: Any) -> dict | None:
        rec = self.entries.get(str(item_id))
        if rec is None:  # another worker may have answered it since this cache was opened
            rec = self._keep(_read(self._path(item_id)))
        return rec

    def put(self, item_id: Any, answer: Answer, score: float) -> None:
        rec = {"id": item_id, "text": answer.text, "tokens": list(answer.token_ids), "score": score}
        self.entries[str(item_id)] = rec
        try:
            atomic_write(self._path(item_id), json.dumps(rec))
        except EraseError as exc:
            raise EraseError(f"cannot write the base-answer cache: {exc}") from None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def collect_correct(
    loaded: Any,
    benchmark: str,
    pool: Iterable[Any],
    wanted: int,
    cache: AnswerCache,
    score: Callable[[Any, str], float],
    max_new_tokens: int,
    on_item: Callable[[bool], None] | None = None,
    batch_size: int = 1,
) -> list[CalibrationItem]:
    """Answer items of `pool` in order until `wanted` are correct (or the pool runs out).

    Items without a cached answer are answered `batch_size` at a time (a batch may answer a few
    items past the last one kept: they are cached, not kept). Nothing is written to the cache
    until some item is answered correctly (a dataset nobody answers leaves no trace).
    """
    kept: list[CalibrationItem] = []
    pool = list(pool)
    device = loaded.model.device
    answers: dict[int, tuple[Answer, float]] = {}
    held: list[tuple[Any, Answer, float]] = []  # computed before the first correct answer: written after it
    for pos, item in enumerate(pool):
        if len(kept) >= wanted:
            break
        if pos not in answers:
            rec = cache.get(item.id)
            if rec is not None:
                answers[pos] = (Answer(text=rec["text"], token_ids=tuple(rec["tokens"])), float(rec["score"]))
            else:
                todo = [p for p in range(pos, len(pool)) if p not in answers and cache.get(pool[p].id) is None]
                todo = todo[: max(1, batch_size)]
                got = greedy_answers(
                    loaded.model, loaded.processor, [item_inputs(loaded.processor, pool[p], device) for p in todo],
                    max_new_tokens,
                )
                for p, answer in zip(todo, got):
                    value = float(score(pool[p], answer.text))
                    answers[p] = (answer, value)
                    held.append((pool[p], answer, value))
                if any(v >= CORRECT for _, _, v in held) or kept:
                    for it, a, v in held:
                        cache.put(it.id, a, v)
                    held.clear()
        answer, value = answers.pop(pos)
        ok = value >= CORRECT
        if ok:
            kept.append(CalibrationItem(item, answer, value))
        if on_item is not None:
            on_item(ok)
    if kept:
        for it, a, v in held:
            cache.put(it.id, a, v)
    return kept
