"""Everything erase-eval needs from models and items, in one place.

Models come from the `models` registry and items, prompts, answers and scores from the `tasks`
registry, as for every other command; erase-eval adds only its defaults (the paper's Table 1
benchmarks) and where AdaVTP's reference images come from. What differs between models or item
sources (the demo's tasks, its shipped profile, its held-out split) is a property of their
registrations, never a name compared here.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from .. import models, tasks
from ..tasks.benchmarks import aggregates

# The paper's Table 1 benchmarks (ERASE Sec. 4.1): the default for a model whose registration names none.
TABLE1_BENCHMARKS = ("ocrbench", "textvqa", "chartqa", "docvqa", "infovqa", "mathvista")
REFERENCE_ITEMS = 72  # images for AdaVTP's reference statistics (the demo's calibration pool: every task x background, twice)

Identity = models.ModelIdentity  # what a model's cached answers are keyed by (and its config, for "auto")


# ----------------------------------------------------------------------------- models
def identify(model: str, revision: str | None = None) -> Identity:
    """Revision, fingerprint and config of MODEL, without weights; one-line errors."""
    return models.identify(model, revision)


def load(
    model: str, *, device: str, dtype: str, attn: str, min_pixels: int | None, max_pixels: int | None, revision: str | None
) -> models.LoadedModel:
    """The loaded model with `.model` and `.processor` (any spec the model registry knows)."""
    return models.load(
        model, device=device, dtype=dtype, min_pixels=min_pixels, max_pixels=max_pixels, attn_implementation=attn, revision=revision
    )


def check_device(device: str) -> str:
    return models.check_device(device)


def default_batch(device: str) -> int:
    return models.default_batch(device)


def check_dtype(dtype: str) -> str:
    return models.check_dtype(dtype)


def default_profile(model: str, identity: Identity) -> str:
    """The profile shipped for MODEL when its registration names one, else "auto"."""
    return models.shipped_profile(model, identity.fingerprint) or "auto"


# ----------------------------------------------------------------------------- items
def check_benchmarks(names: Sequence[str]) -> list[str]:
    """Canonical names; an unknown one is a one-line error."""
    return tasks.check_names(list(names))


def default_benchmarks(model: str) -> list[str]:
    """What MODEL's registration names (the demo: its tasks), else the paper's Table 1 benchmarks."""
    named = models.default_tasks(model)
    return list(named) if named is not None else list(TABLE1_BENCHMARKS)


def describe_datasets(paths: Sequence[str], scorer: str, template: str | None, taken: set[str]) -> list[Any]:
    """--dataset sources named and checked (scorer, prompt template) before anything loads."""
    return tasks.own_data.describe(list(paths), scorer, template, taken)


def dataset_spec(ds: Any) -> str:
    return ds.spec()


def benchmark_items(name: str, *, limit: int | None, seed: int, data_dir: str | None) -> list[Any]:
    """The items NAME is evaluated on: its held-out split where it has one, else its evaluation split."""
    return tasks.evaluation_pool(name, data_dir=data_dir, limit=limit, seed=seed)


def dataset_items(ds: Any, *, limit: int | None, seed: int) -> list[Any]:
    return tasks.own_data.load_items(ds, limit=limit, seed=seed)


def _calibration_source(item_sets: Sequence[Any]) -> str | None:
    """The first evaluated source whose evaluation items are held out from its calibration pool."""
    for s in item_sets:
        if s.source is not None and tasks.get(s.source).heldout is not None:
            return s.source
    return None


def reference_items(item_sets: Sequence[Any], *, seed: int, data_dir: str | None) -> tuple[list[Any], str]:
    """Images for AdaVTP's reference statistics when the profile has none, and what they were.

    A source with a separate held-out split gives its calibration pool (disjoint from what is
    evaluated); otherwise the first evaluated items' images are used (the statistics read image
    features only, never answers). The description names them exactly (it is part of the cache key).
    `item_sets` are erase-eval's item sets (`.source`: a registered source or None, `.items`).
    """
    name = _calibration_source(item_sets)
    if name is not None:
        items = tasks.item_pool(name, data_dir=data_dir, limit=REFERENCE_ITEMS, seed=seed)
    else:
        items = [it for s in item_sets for it in s.items][:REFERENCE_ITEMS]
    return items, reference_spec(item_sets, seed=seed)


def reference_spec(item_sets: Sequence[Any], *, seed: int) -> str:
    name = _calibration_source(item_sets)
    if name is not None:
        return f"the {name} source's calibration pool, {REFERENCE_ITEMS} items (seed {seed})"
    ids = [f"{it.benchmark}/{it.id}" for s in item_sets for it in s.items][:REFERENCE_ITEMS]
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]
    return f"the first {len(ids)} evaluated items' images (ids sha256 {digest}; the profile has no methods.adavtp)"


# ----------------------------------------------------------------------------- asking and scoring
def item_inputs(processor: Any, item: Any, device: Any) -> dict[str, Any]:
    """One item's processor outputs: the image before the prompt, the model's chat template."""
    return tasks.encode(processor, item, device)


def answer_batch(model: Any, processor: Any, inputs: Sequence[dict[str, Any]], max_new_tokens: int) -> list[str]:
    """Greedy answers (text) of one left-padded batch: a single `generate()` call."""
    return [a.text for a in tasks.greedy_answers(model, processor, list(inputs), max_new_tokens)]


def score(item: Any, prediction: str) -> float:
    """One answer's score in [0, 1], by the item's own rule (its source's, or its --dataset scorer)."""
    return float(tasks.score(item, prediction))


def aggregate(source: str | None, items: Sequence[Any], answers: Sequence[str]) -> float:
    """An item set's total in [0, 1], as the field computes it for SOURCE (MMBench circular, MMStar
    the mean of its per-category means, otherwise the mean item score); a --dataset (no source)
    is the mean item score."""
    if not items:
        return float("nan")
    results = [aggregates.ItemResult.from_item(it, score(it, a)) for it, a in zip(items, answers)]
    if source is None:
        return aggregates.mean_score(results)
    return aggregates.aggregate(source, results)
