"""Architecture fingerprints, and picking a profile for a model.

A profile records the fingerprint of the architecture it was calibrated on:
family, pixels per LLM vision token, LLM depth and hidden size. For a model
(or only its config), `match_profile` looks through the profiles found by name
(``ERASE_PROFILE_PATH`` first, then the shipped ones):

1. an **exact** match: same family, pixels per token, depth and hidden size
   (ties: the profile calibrated on the model's own id, then calibrated before
   published values, then by name);
2. failing that, a **compatible** one: same pixels per token and same depth,
   the condition under which the paper carried Qwen2.5-VL-7B's values over to
   InternVL3-8B zero-shot (App. D.4). It warns, naming the model the profile
   was calibrated on (ties: same family, then same hidden size, then by name);
3. nothing compatible: a `ProfileError` that says, per profile, why it does
   not fit.

``"auto"`` in `erase.apply(model, "auto")` and `resolve_profile("auto", model)`
means exactly this.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .adapters import adapter_class_for_config, adapter_for
from .errors import EraseError, EraseTypeError, ProfileError
from .profile import Fingerprint, Profile
from .registry import load_profile, shipped_names

AUTO = "auto"


@dataclass(frozen=True)
class ProfileMatch:
    profile: Profile
    fingerprint: Fingerprint  # the model's
    exact: bool

    def describe(self) -> str:
        """One line: how the profile fits the model."""
        p = self.profile
        if self.exact:
            return f"exact match: {p.name!r} was calibrated on {p.model.id}"
        fp = self.fingerprint
        return (
            f"{p.name!r} zero-shot: it was calibrated on {p.model.id} ({describe(p.model.fingerprint)}), "
            f"with the same {fp.pixels_per_token} px per token and {fp.num_layers} decoder layers"
        )


def describe(fp: Fingerprint) -> str:
    return f"{fp.family}, {fp.pixels_per_token} px per token, {fp.num_layers} layers, hidden size {fp.hidden_size}"


def mismatches(profile_fp: Fingerprint, model_fp: Fingerprint) -> list[str]:
    """How a profile's fingerprint differs from a model's (empty: an exact match)."""
    out = []
    if profile_fp.family != model_fp.family:
        out.append(f"family {profile_fp.family} vs {model_fp.family}")
    if profile_fp.pixels_per_token != model_fp.pixels_per_token:
        out.append(f"{profile_fp.pixels_per_token} vs {model_fp.pixels_per_token} pixels per token")
    if profile_fp.num_layers != model_fp.num_layers:
        out.append(f"{profile_fp.num_layers} vs {model_fp.num_layers} layers")
    if profile_fp.hidden_size != model_fp.hidden_size:
        out.append(f"hidden size {profile_fp.hidden_size} vs {model_fp.hidden_size}")
    return out


def compatible(profile_fp: Fingerprint, model_fp: Fingerprint) -> bool:
    """Same pixels per token and same depth: the profile's values transfer zero-shot."""
    return profile_fp.pixels_per_token == model_fp.pixels_per_token and profile_fp.num_layers == model_fp.num_layers


def load_config(path_or_id: str | os.PathLike[str]) -> Any:
    """A transformers config from a model folder, a config.json file or a hub id."""
    from transformers import AutoConfig

    text = os.fspath(path_or_id)
    try:
        return AutoConfig.from_pretrained(text)
    except Exception as exc:  # noqa: BLE001 - any unreadable or invalid config is a user fault here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = first if Path(text).exists() else f"no such folder or config file, and no such model on the hub ({first})"
        raise EraseError(f"cannot read a model config from {text!r}: {where}") from None


def fingerprint_of(model_or_config: Any) -> Fingerprint:
    """The fingerprint of a loaded model, a config object, or a model folder / config.json / hub id."""
    if isinstance(model_or_config, bytes) or not (
        isinstance(model_or_config, (str, os.PathLike)) or hasattr(model_or_config, "config") or hasattr(model_or_config, "model_type")
    ):
        raise EraseTypeError(
            "model_or_config: expected a loaded model, a transformers config, or a model folder / config.json / hub id, "
            f"got {'None' if model_or_config is None else type(model_or_config).__name__}"
        )
    if not isinstance(model_or_config, (str, os.PathLike)) and hasattr(model_or_config, "config"):
        adapter = adapter_for(model_or_config)
        if adapter is not None:
            return adapter.fingerprint()
    if isinstance(model_or_config, (str, os.PathLike)):
        model_or_config = load_config(model_or_config)
    config = getattr(model_or_config, "config", model_or_config)
    cls = adapter_class_for_config(config)
    if cls is None:
        from .adapters import supported_models

        raise EraseError(
            f"ERASE has no adapter for model type {getattr(config, 'model_type', None)!r}; "
            f"supported: {', '.join(supported_models())}"
        )
    return cls.fingerprint_from_config(config)


def _candidates(candidates: Iterable[Profile | str | os.PathLike[str]] | None) -> list[Profile]:
    if candidates is None:  # every name on ERASE_PROFILE_PATH and in profiles/, highest version of each
        candidates = shipped_names()
    return [load_profile(c) for c in candidates]


def find_profile(
    model_or_config: Any, candidates: Iterable[Profile | str | os.PathLike[str]] | None = None
) -> ProfileMatch:
    """The best profile for a model, without warning; `ProfileError` when none fits."""
    if isinstance(model_or_config, (str, os.PathLike)):
        model_or_config = load_config(model_or_config)
    fp = fingerprint_of(model_or_config)
    own_id = getattr(getattr(model_or_config, "config", model_or_config), "_name_or_path", None)
    profiles = _candidates(candidates)
    if not profiles:
        raise ProfileError("no profiles to choose from (none shipped and none on ERASE_PROFILE_PATH)")
    order = {id(p): i for i, p in enumerate(profiles)}
    exact = [p for p in profiles if p.model.fingerprint == fp]
    if exact:
        best = min(exact, key=lambda p: (p.model.id != own_id, p.calibration.source == "published", order[id(p)]))
        return ProfileMatch(best, fp, True)
    fits = [p for p in profiles if compatible(p.model.fingerprint, fp)]
    if fits:
        best = min(
            fits,
            key=lambda p: (p.model.fingerprint.family != fp.family, p.model.fingerprint.hidden_size != fp.hidden_size, order[id(p)]),
        )
        return ProfileMatch(best, fp, False)
    reasons = []
    for p in profiles:
        pfp = p.model.fingerprint
        why = []
        if pfp.pixels_per_token != fp.pixels_per_token:
            why.append(f"{pfp.pixels_per_token} px per token instead of {fp.pixels_per_token}")
        if pfp.num_layers != fp.num_layers:
            why.append(f"{pfp.num_layers} layers instead of {fp.num_layers}")
        reasons.append(f"{p.name} has {' and '.join(why)} ({p.model.id})")
    raise ProfileError(
        f"no profile fits this model ({describe(fp)}); a profile transfers only with the same pixels per token "
        f"and depth: {'; '.join(reasons)}. Calibrate one with erase-calibrate"
    )


def match_profile(
    model_or_config: Any, candidates: Iterable[Profile | str | os.PathLike[str]] | None = None
) -> Profile:
    """The profile for a model (or config, folder, config.json): exact, else compatible with a warning.

    `candidates` (names, paths or profiles) restricts the choice; by default every
    profile found by name is considered.
    """
    match = find_profile(model_or_config, candidates)
    if not match.exact:
        warnings.warn(
            f"no profile was calibrated for this architecture ({describe(match.fingerprint)}); using "
            + match.describe(),
            UserWarning,
            stacklevel=2,
        )
    return match.profile


def resolve_profile(profile: Profile | str | os.PathLike[str], model_or_config: Any) -> Profile:
    """`load_profile`, where ``"auto"`` picks the profile for the model with `match_profile`."""
    if isinstance(profile, str) and profile == AUTO:
        return match_profile(model_or_config)
    return load_profile(profile)
