"""Everything erase-eval needs from models and items, in one place.

The calibrator is being split into `models/` and `tasks/` registries; erase-eval
reaches models, items, prompts, answers and scores only through this module, so
the switch is one file. Today it uses `model_loading`, `model_identity`,
`answering`, `benchmarks` (with `own_data`), `calibration.sources` and the
demo's tasks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from erase import EraseError

DEMO = "demo"
# The paper's Table 1 benchmarks (ERASE Sec. 4.1): the default for a real model.
TABLE1_BENCHMARKS = ("ocrbench", "textvqa", "chartqa", "docvqa", "infovqa", "mathvista")
DEMO_HELDOUT_ITEMS = 360  # the demo's quality bars use the same 360 (every task x background, 10 each)
REFERENCE_ITEMS = 72  # AdaVTP's reference statistics: demo calibration items (every task x background, twice)


# ----------------------------------------------------------------------------- models
@dataclass(frozen=True)
class Identity:
    """What a model's cached answers are keyed by: as named, its revision and architecture."""

    model: str
    revision: str | None
    fingerprint: Any  # erase.Fingerprint
    config: Any  # transformers config (for "auto" profiles, without reading weights)


def identify(model: str, revision: str | None = None) -> Identity:
    """Revision and fingerprint of MODEL from its config alone (no weights): one-line errors."""
    from ..model_identity import identify as _identify, load_config

    ident = _identify(model, revision)
    _, config = load_config(model, revision)
    return Identity(model=model, revision=ident.revision, fingerprint=ident.fingerprint, config=config)


def load(
    model: str, *, device: str, dtype: str, attn: str, min_pixels: int | None, max_pixels: int | None, revision: str | None
) -> Any:
    """The loaded model with `.model` and `.processor` (a hub id, a folder or `demo`)."""
    from ..model_loading import load_model

    return load_model(
        model, device=device, dtype=dtype, min_pixels=min_pixels, max_pixels=max_pixels, attn_implementation=attn, revision=revision
    )


def check_device(device: str) -> str:
    from ..model_loading import check_device as _check

    return _check(device)


def check_dtype(dtype: str) -> str:
    from ..model_loading import check_dtype as _check

    return _check(dtype)


# ----------------------------------------------------------------------------- items
def benchmark_names() -> list[str]:
    from .. import benchmarks

    return [*benchmarks.benchmark_names(), DEMO]


def check_benchmarks(names: Sequence[str]) -> list[str]:
    """Canonical names; an unknown one is a one-line error."""
    from ..calibration import sources

    return sources.check_names(list(names))


def default_benchmarks(model: str) -> list[str]:
    return [DEMO] if model == DEMO else list(TABLE1_BENCHMARKS)


def describe_datasets(paths: Sequence[str], scorer: str, template: str | None, taken: set[str]) -> list[Any]:
    """--dataset sources named and checked (scorer, prompt template) before anything loads."""
    from ..benchmarks import own_data

    return own_data.describe(list(paths), scorer, template, taken)


def dataset_spec(ds: Any) -> str:
    return ds.spec()


def benchmark_items(name: str, *, limit: int | None, seed: int, data_dir: str | None) -> list[Any]:
    """The items of a benchmark: the demo's held-out split, or the benchmark's evaluation split."""
    if name == DEMO:
        from ..demo import tasks

        return tasks.heldout_items(DEMO_HELDOUT_ITEMS if limit is None else limit, seed=seed)
    from .. import benchmarks

    return benchmarks.load_items(name, data_dir=data_dir, limit=limit, seed=seed)


def dataset_items(ds: Any, *, limit: int | None, seed: int) -> list[Any]:
    from ..benchmarks import own_data

    return own_data.load_items(ds, limit=limit, seed=seed)


def reference_items(model: str, evaluated: Sequence[Any], *, seed: int) -> tuple[list[Any], str]:
    """Images for AdaVTP's reference statistics when the profile has none, and what they were.

    The demo has a calibration split disjoint from its held-out items; for other models the
    first evaluated items' images are used (the statistics read image features only, never
    answers). The description names them exactly (it is part of the cache key).
    """
    if model == DEMO:
        from ..demo import tasks

        return tasks.calibration_items(REFERENCE_ITEMS, seed=seed), reference_spec(model, evaluated, seed=seed)
    return list(evaluated)[:REFERENCE_ITEMS], reference_spec(model, evaluated, seed=seed)


def reference_spec(model: str, evaluated: Sequence[Any], *, seed: int) -> str:
    if model == DEMO:
        return f"the demo's calibration split, {REFERENCE_ITEMS} items (seed {seed})"
    ids = [f"{it.benchmark}/{it.id}" for it in list(evaluated)[:REFERENCE_ITEMS]]
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]
    return f"the first {len(ids)} evaluated items' images (ids sha256 {digest}; the profile has no methods.adavtp)"


# ----------------------------------------------------------------------------- asking and scoring
def item_inputs(processor: Any, item: Any, device: Any) -> dict[str, Any]:
    """One item's processor outputs: the image before the prompt, the model's chat template."""
    from ..answering import item_inputs as _inputs

    return _inputs(processor, item, device)


def answer_batch(model: Any, processor: Any, inputs: Sequence[dict[str, Any]], max_new_tokens: int) -> list[str]:
    """Greedy answers (text) of one left-padded batch: a single `generate()` call."""
    from ..answering import greedy_answers

    return [a.text for a in greedy_answers(model, processor, list(inputs), max_new_tokens)]


def score(item: Any, prediction: str) -> float:
    """One answer's score in [0, 1], by the item's own rule (benchmark, demo or --dataset scorer)."""
    from ..calibration import sources

    return float(sources.score(item, prediction))


def aggregate(benchmark: str, items: Sequence[Any], answers: Sequence[str]) -> float:
    """A benchmark's score over its items, in [0, 1].

    Today the mean of the per-item scores for every benchmark. The field's aggregates
    (MMBench circular, MMStar per-category mean) replace this when benchmarks/ provides
    them: this is the one call erase-eval makes.
    """
    if not items:
        return float("nan")
    return sum(score(it, a) for it, a in zip(items, answers)) / len(items)
