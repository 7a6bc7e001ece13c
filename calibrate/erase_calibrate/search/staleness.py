"""Is a profile still current for a model? (`erase-calibrate check`, `--if-stale`)

A profile is current when all of these hold; otherwise it is stale and each
failing condition is a reason:

- the model's revision equals the profile's `model.revision` (see `model_identity`);
- the model's architecture fingerprint equals the profile's (family, pixels per vision token,
  LLM layers, hidden size);
- the profile's `schema_version` is the one this toolkit writes;
- the profile was calibrated by a toolkit of the same release series as this one: the same
  major version, or, before 1.0, the same 0.MINOR (semver: 0.x releases may change behaviour).

Only the model's config is read, never its weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import erase
from erase import EraseError, Profile, load_profile
from erase.limits import load_plain_yaml, read_profile_text
from erase.matching import describe, mismatches
from erase.registry import looks_like_path, profile_files

from ..models import ModelIdentity, identify

EXIT_CURRENT = 0
EXIT_STALE = 3


@dataclass
class Verdict:
    profile: str  # how the profile was named, for messages
    model: ModelIdentity | None
    reasons: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def current(self) -> bool:
        return not self.reasons

    def line(self) -> str:
        return f"current: {self.summary}" if self.current else f"stale: {'; '.join(self.reasons)}"


def release_series(version: str) -> str:
    """'1' for 1.4.2, '0.3' for 0.3.1: releases within a series read each other's profiles unchanged."""
    parts = str(version).split(".")
    major = parts[0]
    return f"0.{parts[1] if len(parts) > 1 else '0'}" if major == "0" else major


def check(model: str, profile: str | os.PathLike[str], revision: str | None = None) -> Verdict:
    """Compare PROFILE (name or path) with MODEL; user faults raise `EraseError`."""
    name = os.fspath(profile)
    old_schema = _other_schema(name)
    if old_schema is not None:  # cannot be parsed by this toolkit at all: stale, not a user mistake
        ident = identify(model, revision)
        return Verdict(name, ident, [f"{name}: schema_version {old_schema}, this toolkit writes {erase.SCHEMA_VERSION}"])
    prof = load_profile(name)
    ident = identify(model, revision)
    return compare(prof, ident, name)


def compare(prof: Profile, ident: ModelIdentity, label: str) -> Verdict:
    v = Verdict(label, ident)
    if prof.model.revision is None:
        v.reasons.append(f"{prof.name} records no model revision (the model is at {ident.revision})")
    elif ident.revision is None:
        v.reasons.append(f"cannot determine the revision of {ident.model} (offline and not in the cache?)")
    elif prof.model.revision != ident.revision:
        v.reasons.append(f"model revision {ident.revision}, {prof.name} v{prof.profile_version} was calibrated on {prof.model.revision}")
    diff = mismatches(prof.model.fingerprint, ident.fingerprint)
    if diff:
        v.reasons.append(f"architecture changed (profile vs model: {', '.join(diff)})")
    if prof.schema_version != erase.SCHEMA_VERSION:
        v.reasons.append(f"schema_version {prof.schema_version}, this toolkit writes {erase.SCHEMA_VERSION}")
    theirs, ours = release_series(prof.calibration.toolkit_version), release_series(erase.__version__)
    if theirs != ours:
        v.reasons.append(f"calibrated by toolkit {prof.calibration.toolkit_version} (series {theirs}), this is {erase.__version__} (series {ours})")
    v.summary = (
        f"{prof.name} v{prof.profile_version} matches {ident.model} "
        f"(revision {ident.revision}; {describe(ident.fingerprint)}; toolkit {prof.calibration.toolkit_version})"
    )
    return v


def _other_schema(name: str) -> int | None:
    """The schema_version of a profile file this toolkit cannot read because of its schema, else None."""
    if not (name.endswith((".yaml", ".yml")) and _is_file(name)):
        return None
    try:  # the same bounded reader and plain-data YAML loader as load_profile
        data = load_plain_yaml(read_profile_text(name), name)
    except EraseError:
        return None  # load_profile reports it
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version != erase.SCHEMA_VERSION:
        return version
    return None


def _is_file(name: str) -> bool:
    try:
        return Path(name).is_file()
    except (OSError, ValueError):
        return False


def profile_exists(profile: str) -> bool:
    """Whether PROFILE names a file or a profile found by name (as `erase.load_profile` looks it up)."""
    if looks_like_path(profile):
        return _is_file(profile)
    return bool(profile_files(profile))
