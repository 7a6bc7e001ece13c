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

from ..answering import Answer, greedy_answer, item_inputs

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
) -> list[CalibrationItem]:
    """Answer items of `pool` in order until `wanted` are correct (or the pool runs out)."""
    kept: list[CalibrationItem] = []
    device = loaded.model.device
    for item in pool:
        if len(kept) >= wanted:
            break
        rec = cache.get(item.id)
        if rec is None:
            answer = greedy_answer(loaded.model, loaded.processor, item_inputs(loaded.processor, item, device), max_new_tokens)
            value = float(score(item, answer.text))
            cache.put(item.id, answer, value)
        else:
            answer = Answer(text=rec["text"], token_ids=tuple(rec["tokens"]))
            value = float(rec["score"])
        ok = value >= CORRECT
        if ok:
            kept.append(CalibrationItem(item, answer, value))
        if on_item is not None:
            on_item(ok)
    return kept
