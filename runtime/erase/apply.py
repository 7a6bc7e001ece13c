"""`erase.apply(model, profile)`: the one entry point that installs ERASE on a model."""

from __future__ import annotations

import os
import warnings
from typing import Any

from torch import nn

from . import _args
from .adapters import adapter_for, supported_models
from .engine import Engine, ImageStats
from .errors import EraseError, EraseTypeError, EraseValueError, ProfileError
from .matching import AUTO, match_profile, mismatches
from .methods import stage1_scorer
from .profile import Profile
from .registry import load_profile
from .strategy import ERASE, Strategy, named_strategy
from ._hf import check_transformers


STAGE1_SITES = ("embeddings", "pixels")


class EraseHandle:
    """ERASE installed on one model. A context manager; `.remove()` restores the model.

    `stats` holds, after each call of the model, one list per sample with one
    `ImageStats` per image.
    """

    def __init__(self, model: nn.Module, engine: Engine):
        self.model = model
        self._engine = engine

    @property
    def profile(self) -> Profile:
        return self._engine.profile

    @property
    def final_keep_ratio(self) -> float:
        return self._engine.final_keep_ratio

    @property
    def stats(self) -> list[list[ImageStats]]:
        return self._engine.stats

    def remove(self) -> None:
        self._engine.remove()
        if getattr(self.model, "_erase_handle", None) is self:
            del self.model._erase_handle

    def __enter__(self) -> "EraseHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _check_arguments(model: Any, profile: Any, final_keep_ratio: Any, allow_transfer: Any, stage1_site: Any) -> None:
    """`apply`'s arguments, checked before anything is installed (`strategy` is checked where it is resolved)."""
    _args.instance("model", model, nn.Module, "a loaded model (a torch.nn.Module, e.g. Qwen2_5_VLForConditionalGeneration)")
    if isinstance(profile, bytes) or not isinstance(profile, (Profile, str, os.PathLike)):
        raise EraseTypeError(
            f"profile: expected an erase.Profile, a profile name, a YAML path or 'auto', got {_args.type_name(profile)}"
        )
    _args.ratio("final_keep_ratio", final_keep_ratio)
    _args.flag("allow_transfer", allow_transfer)
    _args.choice("stage1_site", stage1_site, STAGE1_SITES)


def apply(
    model: nn.Module,
    profile: Profile | str,
    *,
    final_keep_ratio: float | None = None,
    allow_transfer: bool = False,
    strategy: Strategy | str = ERASE,
    stage1_site: str = "embeddings",
) -> EraseHandle:
    """Install two-stage pruning and KV eviction on a loaded model.

    After this, a plain `model.generate(**inputs)` (or forward) prunes every
    image in the prompt. `profile` is a profile, a shipped name, a YAML path,
    or ``"auto"``: the profile calibrated for this architecture, else a
    compatible one (same pixels per token and depth) with a warning (see
    `erase.match_profile`). `final_keep_ratio` (share of each image's tokens
    kept after Stage 2) defaults to the profile's. A named profile calibrated
    for another architecture is refused unless `allow_transfer=True`.
    `strategy` switches to a baseline schedule: a `erase.Strategy`, or a
    name ("erase", "stage1", "fastv", "random", "uniform", "adavtp",
    "polymorphic"; see `erase.named_strategy`); the default is ERASE.
    `stage1_site="pixels"` drops Stage 1's tokens before the vision encoder
    (whole 2x2 patch groups; Qwen2.5-VL and Qwen3-VL), so the ViT also runs
    on fewer patches; the default drops them after the merger, as the paper
    does.
    """
    check_transformers()
    _check_arguments(model, profile, final_keep_ratio, allow_transfer, stage1_site)
    adapter = adapter_for(model)
    if adapter is None:
        raise EraseTypeError(
            f"ERASE has no adapter for {type(model).__name__}; supported: {', '.join(supported_models())}"
        )
    if stage1_site == "pixels" and not adapter.supports_pixel_site:
        raise EraseError(f"stage1_site='pixels' is not supported for {type(model).__name__}; use 'embeddings'")
    if getattr(model, "_erase_handle", None) is not None:
        raise EraseError("ERASE is already applied to this model; call .remove() on the first handle")
    auto = isinstance(profile, str) and profile == AUTO
    profile = match_profile(model) if auto else load_profile(profile)  # "auto" warns on a zero-shot pick
    ratio = profile.stage2.final_keep_ratio if final_keep_ratio is None else final_keep_ratio
    if not 0.0 < ratio <= 1.0:
        raise EraseError(f"final_keep_ratio must be in (0, 1], got {ratio}")
    if isinstance(strategy, str):
        try:
            strategy = named_strategy(strategy, ratio)
        except ValueError as exc:
            raise EraseValueError(f"strategy: {exc}") from None
    elif not isinstance(strategy, Strategy):
        raise EraseTypeError(f"strategy: expected an erase.Strategy or a strategy name, got {type(strategy).__name__}")
    mismatch = mismatches(profile.model.fingerprint, adapter.fingerprint())
    if mismatch and not auto:
        msg = f"profile {profile.name!r} was calibrated for {profile.model.id} ({'; '.join(mismatch)})"
        if not allow_transfer:
            raise ProfileError(msg + "; pass allow_transfer=True (or the profile 'auto') to use it anyway")
        warnings.warn(msg + "; using it zero-shot (allow_transfer=True)", stacklevel=2)
    _check_method(strategy, profile, adapter, stage1_site)
    profile.check_depth(adapter.num_layers())
    if strategy.stage2_layer is not None and strategy.stage2_layer >= adapter.num_layers():
        raise EraseError(
            f"stage2_layer {strategy.stage2_layer} is beyond the model's depth ({adapter.num_layers()} decoder layers)"
        )
    engine = Engine(adapter, profile, ratio, strategy, stage1_site)
    engine.install()
    handle = EraseHandle(model, engine)
    model._erase_handle = handle
    return handle


def _check_method(strategy: Strategy, profile: Profile, adapter: Any, stage1_site: str) -> None:
    """What the strategy's scorer needs: the features after the encoder, its attention, the profile's statistics."""
    scorer = stage1_scorer(strategy.stage1)
    if (scorer.uses_features or scorer.uses_attention) and stage1_site != "embeddings":
        raise EraseError(f"Stage 1 scorer {scorer.name!r} ranks the vision encoder's output: use stage1_site='embeddings'")
    if scorer.uses_attention and not adapter.supports_vision_attention:
        raise EraseError(f"Stage 1 scorer {scorer.name!r} needs the vision encoder's attention, which {adapter.family} does not expose")
    if scorer.reference is not None and getattr(profile.methods, scorer.reference) is None:
        raise EraseError(
            f"profile {profile.name!r} has no methods.{scorer.reference} statistics, which Stage 1 scorer {scorer.name!r} "
            "needs; compute them on calibration images (erase.references.with_adavtp_reference, or erase-calibrate)"
        )
