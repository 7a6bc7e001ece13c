"""erase-eval's work: every (benchmark, method, pruning) answered, cached per item, scored.

What "METHOD at pruning p" means (final keep ratio f = 1 - p of each image's vision tokens):

- base: the unpatched model; its rows have pruning 0.
- every other method: ``erase.apply(model, profile, final_keep_ratio=f, strategy=METHOD)``,
  the runtime's named strategy (`erase.named_strategy`) at that ratio:
  - erase: Stage 1 keeps the profile's keep ratio for the image's complexity level (never
    below f), then Stage 2 at the level's layer prunes to floor(M f) tokens and evicts them;
  - stage1: the same Stage 1, no Stage 2; it prunes less than p wherever the level's ratio
    is above f (hence `pruning_achieved`);
  - fastv: all tokens to layer 2, then the instruction's attention keeps floor(M f), no eviction;
  - random / uniform: Stage 1 keeps floor(M f) tokens (random / evenly spaced); the runtime
    seeds random's draw with a key of each image's pixels, so an item gets the same draw
    whatever its batch;
  - adavtp: attention plus diversity before the LLM, to floor(M f);
  - polymorphic: density-peak merging to about 2f, then rater-guided pruning to f at its layer.

`pruning_achieved` is the mean over items of 1 - (vision tokens after the last stage) /
(vision tokens of the image), from the runtime's own `ImageStats`.

Answers are cached on disk, one JSON line per item, in a file per (model identity and
settings, item set, method, pruning, profile); a rerun reads them and asks the model only
for what is missing. The model loads only when something is missing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import erase
from erase import EraseError
from erase.strategy import NAMED

from . import sources

BASE = "base"
METHODS = (BASE, *NAMED)
DEFAULT_METHODS = ",".join(METHODS)
DEFAULT_PRUNING = "0.62,0.75,0.85,0.90"
CACHE_VERSION = 1  # bump when a record's meaning changes


def parse_methods(text: str) -> list[str]:
    """Methods in the given order, base first (retained accuracy needs it even when not asked for)."""
    out = []
    for m in (x.strip() for x in text.split(",")):
        if not m:
            continue
        if m not in METHODS:
            raise EraseError(f"--methods: unknown method {m!r} (known: {', '.join(METHODS)})")
        if m not in out:
            out.append(m)
    if not out:
        raise EraseError("--methods: no method given")
    return [BASE, *(m for m in out if m != BASE)]


def parse_pruning(text: str) -> list[float]:
    out = []
    for part in (x.strip() for x in text.split(",")):
        if not part:
            continue
        try:
            p = float(part)
        except ValueError:
            p = math.nan
        if not 0.0 < p < 1.0:  # nan fails too
            raise EraseError(f"--pruning {part!r}: expected a share of vision tokens removed, in (0, 1), e.g. 0.85")
        if p not in out:
            out.append(p)
    if not out:
        raise EraseError("--pruning: no level given")
    return sorted(out)


def keep_ratio(pruning: float) -> float:
    # rounded: 1 - 0.9 is 0.09999999999999998, and floor(M f) must not lose a token to it
    return round(1.0 - pruning, 9)


@dataclass
class ItemSet:
    """One column of the table: a registered item source (a benchmark, the demo tasks) or a --dataset."""

    name: str
    key: str  # what identifies its items beyond their ids (data source, scorer, prompt)
    items: list[Any]
    source: str | None = None  # the registered item source it comes from (None: a --dataset)


@dataclass
class EvalConfig:
    model: str
    methods: list[str]
    pruning: list[float]
    item_sets: list[ItemSet]
    profile: erase.Profile | None
    profile_source: str
    cache_dir: Path
    device: str = "cpu"
    dtype: str = "float32"
    attn: str = "sdpa"
    min_pixels: int | None = None
    max_pixels: int | None = None
    revision: str | None = None
    max_new_tokens: int = 16
    batch: int = 8
    seed: int = 0
    data_dir: str | None = None
    allow_transfer: bool = False
    identity: sources.Identity | None = None
    notes: list[str] = field(default_factory=list)


def _digest(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def profile_digest(profile: erase.Profile) -> str:
    """What in a profile changes answers: the stages, the method statistics, the pixel range."""
    d = profile.to_dict()
    return _digest({k: d.get(k) for k in ("model", "image_processing", "stage1", "stage2", "methods")})


class Cache:
    """Per-item answers on disk: one JSON line per item, appended batch by batch."""

    def __init__(self, root: Path, config: EvalConfig):
        ident = config.identity
        model_key = {
            "v": CACHE_VERSION,
            "model": config.model,
            "revision": ident.revision if ident else None,
            "fingerprint": str(ident.fingerprint) if ident else None,
            "dtype": config.dtype,
            "attn": config.attn,
            "device": config.device.split(":")[0],
            "pixels": [config.min_pixels, config.max_pixels],
            "max_new_tokens": config.max_new_tokens,
            "erase": erase.__version__,
        }
        self.folder = Path(root) / f"{_slug(config.model)}-{_digest(model_key)}"
        self.model_key = model_key

    def path(self, item_set: ItemSet, method: str, pruning: float, profile_key: str | None) -> Path:
        what = {"set": item_set.name, "key": item_set.key, "method": method, "pruning": pruning, "profile": profile_key}
        return self.folder / f"{_slug(item_set.name)}.{method}.{pruning:.4f}.{_digest(what, 12)}.jsonl"

    @staticmethod
    def read(path: Path) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return out
        except OSError as exc:
            raise EraseError(f"cache {path}: cannot read: {exc.strerror or exc}") from None
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut short by an interrupted run: answered again
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                out[rec["id"]] = rec
        return out

    @staticmethod
    def append(path: Path, records: Sequence[dict[str, Any]]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                for rec in records:
                    fh.write(json.dumps(rec, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise EraseError(f"cache {path}: cannot write: {exc.strerror or exc}") from None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text.lower()).strip("-")[:48] or "x"


class Runner:
    """Loads the model on first need, applies each strategy once, answers what is missing."""

    def __init__(self, config: EvalConfig, progress: Callable[..., Any], log: Callable[[str], None]):
        self.config = config
        self.progress = progress
        self.log = log
        self.loaded: Any = None
        self.profile = config.profile
        self.reference_note: str | None = None
        self._inputs: dict[int, dict[str, Any]] = {}

    def model(self) -> Any:
        if self.loaded is None:
            c = self.config
            self.log(f"erase-eval: loading {c.model} ({c.dtype}, {c.device})")
            self.loaded = sources.load(
                c.model, device=c.device, dtype=c.dtype, attn=c.attn, min_pixels=c.min_pixels, max_pixels=c.max_pixels,
                revision=c.revision,
            )
        return self.loaded

    def method_profile(self, method: str) -> erase.Profile:
        """The profile a method runs with: AdaVTP needs reference statistics the profile may lack."""
        prof = self.profile
        if method == "adavtp" and prof.methods.adavtp is None:
            from erase.references import with_adavtp_reference

            lm = self.model()
            c = self.config
            ref_items, what = sources.reference_items(c.item_sets, seed=c.seed, data_dir=c.data_dir)
            inputs = (sources.item_inputs(lm.processor, it, self.config.device) for it in ref_items)
            prof = self.profile = with_adavtp_reference(prof, lm.model, inputs)
            ref = prof.methods.adavtp
            self.reference_note = f"AdaVTP reference statistics from {what}: erank_avg {ref.erank_avg:.4f}, tau_max {ref.tau_max:.4f}"
            self.log(f"erase-eval: {self.reference_note}")
        return prof

    def profile_key(self, method: str) -> str | None:
        if method == BASE:
            return None
        key = profile_digest(self.config.profile)
        if method == "random":
            key += ":seed-per-image"  # answers of 0.2's per-item seeding are not reused
        if method == "adavtp" and self.config.profile.methods.adavtp is None:
            key += ":adavtp-reference:" + sources.reference_spec(self.config.item_sets, seed=self.config.seed)
        return key

    def answer(self, method: str, pruning: float, items: Sequence[Any], done: Callable[[list[dict[str, Any]]], None]) -> None:
        """Answer `items` under METHOD at PRUNING, in batches; `done` gets each batch's records."""
        lm = self.model()
        c = self.config
        handle = None
        if method != BASE:
            prof = self.method_profile(method)
            strategy = erase.named_strategy(method, keep_ratio(pruning))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # allow_transfer's zero-shot warning: noted once in the report
                handle = erase.apply(
                    lm.model, prof, final_keep_ratio=keep_ratio(pruning), strategy=strategy, allow_transfer=c.allow_transfer
                )
        try:
            for start in range(0, len(items), c.batch):
                chunk = list(items[start : start + c.batch])
                inputs = [sources.item_inputs(lm.processor, it, c.device) for it in chunk]
                answers = sources.answer_batch(lm.model, lm.processor, inputs, c.max_new_tokens)
                records = []
                for row, (it, ans) in enumerate(zip(chunk, answers)):
                    rec = {"id": it.id, "answer": ans}
                    if handle is not None:
                        stats = handle.stats[row]
                        total = sum(st.tokens_total for st in stats)
                        rec.update(
                            tokens_total=total,
                            tokens_stage1=sum(st.tokens_after_stage1 for st in stats),
                            tokens_final=sum(st.tokens_after_stage2 for st in stats),
                        )
                    records.append(rec)
                done(records)
        finally:
            if handle is not None:
                handle.remove()


def evaluate(config: EvalConfig, *, progress: Any, log: Callable[[str], None]) -> dict[str, Any]:
    """Every (item set, method, pruning) answered (from the cache where possible) and scored."""
    cache = Cache(config.cache_dir, config)
    runner = Runner(config, progress, log)
    jobs = [(BASE, 0.0)] + [(m, p) for m in config.methods if m != BASE for p in config.pruning]
    # what is cached already
    plan = []
    missing_total = 0
    for method, pruning in jobs:
        pkey = runner.profile_key(method)
        for s in config.item_sets:
            path = cache.path(s, method, pruning, pkey)
            have = Cache.read(path)
            missing = [it for it in s.items if it.id not in have]
            missing_total += len(missing)
            plan.append((method, pruning, s, path, have, missing))
    cached = sum(len(s.items) for s in config.item_sets) * len(jobs) - missing_total
    if cached:
        log(f"erase-eval: {cached} answer(s) from the cache {cache.folder}, {missing_total} to compute")
    with progress("answering", total=missing_total) as tick:
        for method, pruning, s, path, have, missing in plan:
            if not missing:
                continue
            label = method if method == BASE else f"{method} @ {pruning:.0%}"

            def done(records: list[dict[str, Any]], have=have, path=path, label=label, name=s.name) -> None:
                Cache.append(path, records)
                for rec in records:
                    have[rec["id"]] = rec
                tick(advance=len(records), description=f"{name}: {label}")

            runner.answer(method, pruning, missing, done)
    rows = _rows(config, plan)
    return {
        "rows": rows,
        "summary": summarise(rows),
        "cache": str(cache.folder),
        "answers_cached": cached,
        "answers_computed": missing_total,
        "adavtp_reference": runner.reference_note,
    }


def _rows(config: EvalConfig, plan: list[tuple]) -> list[dict[str, Any]]:
    base_acc: dict[str, float] = {}
    rows = []
    for method, pruning, s, _path, have, _missing in plan:
        recs = [have[it.id] for it in s.items]
        answers = [r["answer"] for r in recs]
        acc = sources.aggregate(s.source, s.items, answers)
        if method == BASE:
            base_acc[s.name] = acc
            achieved = stage1 = 0.0
        else:
            achieved = _mean([1.0 - r["tokens_final"] / r["tokens_total"] for r in recs if r.get("tokens_total")])
            stage1 = _mean([1.0 - r["tokens_stage1"] / r["tokens_total"] for r in recs if r.get("tokens_total")])
        base = base_acc.get(s.name)
        rows.append(
            {
                "benchmark": s.name,
                "method": method,
                "pruning": pruning,
                "pruning_achieved": _round(achieved),
                "pruning_stage1": _round(stage1),
                "items": len(s.items),
                "accuracy": _round(acc),
                "correct": sum(1 for it, a in zip(s.items, answers) if sources.score(it, a) >= 0.5),
                "retained": _round(acc / base) if base else None,
            }
        )
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, pruning): means over the benchmarks (the paper's Avg column: mean retained)."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["pruning"]), []).append(r)
    out = []
    for (method, pruning), rs in groups.items():
        retained = [r["retained"] for r in rs if r["retained"] is not None]
        out.append(
            {
                "method": method,
                "pruning": pruning,
                "benchmarks": len(rs),
                "accuracy": _round(_mean([r["accuracy"] for r in rs])),
                "retained": _round(_mean(retained)) if retained else None,
                "pruning_achieved": _round(_mean([r["pruning_achieved"] for r in rs])),
            }
        )
    return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _round(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 6)
