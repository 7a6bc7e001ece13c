"""The one profile builder: a model's fingerprint and pixel range, with the search's (or a hand-made) settings.

The calibrator starts its study from `template(loaded)`, the demo's hand-made profiles are
`template(...)` with their thresholds and keep ratios, and erase-bench picks a shipped profile
through the model's registration (`registry.shipped_profile`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

from erase import EraseError, __version__
from erase.adapters import adapter_for
from erase.profile import Calibration, Fingerprint, ImageProcessing, ModelInfo, Profile, Stage1, Stage2


def profile_name(model_id: str) -> str:
    """A profile name from a model spec: its last path part, lowercase, safe as a file name."""
    base = model_id.rstrip("/").split("/")[-1].lower()
    return re.sub(r"[^a-z0-9.\-]+", "-", base).strip("-") or "model"


def stage2_layers(family: str, depth: int) -> tuple[int, int]:
    """The paper's layers, 0-based: early 2nd (4th for Qwen3-VL's deep-stack), late at 60% of depth."""
    early = 3 if family == "qwen3_vl" else 1
    late = max(early + 1, math.floor(0.6 * depth))
    return min(early, depth - 1), min(late, depth - 1)


def default_thresholds(levels: int) -> tuple[float, ...]:
    """Evenly spaced below log(256), the largest entropy of 8-bit patches: a neutral start."""
    return tuple(math.log(256) * (levels - 1 - i) / levels for i in range(levels - 1))


def template(
    model: Any,
    *,
    name: str,
    model_id: str,
    revision: str | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    levels: int = 4,
    thresholds: Sequence[float] | None = None,
    keep_ratios: Sequence[float] | None = None,
    final_keep_ratio: float = 0.15,
    early_layer: int | None = None,
    late_layer: int | None = None,
    source: str = "calibrated",
    date: str = "1970-01-01",
) -> Profile:
    """A version-1 profile for MODEL: thresholds and keep ratios as given (default: neutral, keep
    everything), the paper's Stage 2 layers unless given, early Stage 2 for the simpler half of the levels."""
    adapter = adapter_for(model)
    if adapter is None:
        raise EraseError(f"ERASE has no adapter for {type(model).__name__}")
    early, late = stage2_layers(adapter.family, adapter.num_layers())
    return Profile(
        name=name,
        profile_version=1,
        model=ModelInfo(
            id=model_id,
            revision=revision,
            fingerprint=Fingerprint(adapter.family, adapter.pixels_per_token(), adapter.num_layers(), adapter.hidden_size()),
        ),
        image_processing=ImageProcessing(min_pixels, max_pixels),
        stage1=Stage1(
            thresholds=tuple(thresholds) if thresholds is not None else default_thresholds(levels),
            keep_ratios=tuple(keep_ratios) if keep_ratios is not None else (1.0,) * levels,
        ),
        stage2=Stage2(
            early_layer=early if early_layer is None else early_layer,
            late_layer=late if late_layer is None else late_layer,
            early_levels=tuple(range(levels // 2 + 1, levels + 1)),
            final_keep_ratio=final_keep_ratio,
        ),
        calibration=Calibration(source=source, toolkit_version=__version__, date=date),
    )


def for_loaded(loaded: Any, **settings: Any) -> Profile:
    """`template` for a `LoadedModel`: its name, id, revision and pixel range filled in."""
    settings.setdefault("name", profile_name(loaded.model_id))
    return template(
        loaded.model, model_id=loaded.model_id, revision=loaded.revision, min_pixels=loaded.min_pixels,
        max_pixels=loaded.max_pixels, **settings,
    )
