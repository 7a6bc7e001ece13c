"""Finding profiles by name or path.

A name is looked up in the folders of ``ERASE_PROFILE_PATH`` (``os.pathsep``
separated) and then in the shipped profiles (the package data ``erase.profiles``: the
repository's ``profiles/`` folder, installed with the runtime). A folder may
hold several versions of one profile (``NAME.yaml``, ``NAME.v2.yaml``, ...); the
highest ``profile_version`` wins.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from .errors import EraseTypeError, ProfileError
from .limits import check_path, read_profile_text
from .profile import Profile, parse_profile_text


def _shipped_dir() -> Path | None:
    """The folder of package ``erase.profiles`` (installed packages live on disk); None for a
    runtime folder put on sys.path without installing, where the data is not mapped in."""
    try:
        return Path(str(resources.files("erase.profiles")))
    except ModuleNotFoundError:
        return None


SHIPPED_DIR = _shipped_dir()
_VERSIONED = re.compile(r"^(?P<name>.+?)(?:\.v(?P<v>\d+))?\.ya?ml$")


def search_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("ERASE_PROFILE_PATH", "").split(os.pathsep) if p]
    return [*extra, SHIPPED_DIR] if SHIPPED_DIR is not None else extra


def read_profile(path: str | os.PathLike[str]) -> Profile:
    """Read and validate one profile file (a regular file within the limits of `erase.limits`)."""
    return parse_profile_text(read_profile_text(path), os.fspath(path))


def profile_files(name: str | None = None, folders: list[Path] | None = None) -> list[Path]:
    """Profile files in the search folders (or `folders`), optionally only those of one name."""
    found = []
    for folder in search_dirs() if folders is None else folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            m = _VERSIONED.match(path.name)
            if m and path.is_file() and (name is None or m["name"] == name):
                found.append(path)
    return found


def looks_like_path(text: str) -> bool:
    """Whether a profile argument names a file (rather than a profile found by name)."""
    if text.endswith((".yaml", ".yml")) or os.sep in text or (os.altsep and os.altsep in text):
        return True
    try:
        return Path(text).exists()
    except (OSError, ValueError):  # a name too long for the file system is not a file
        return False


def shipped_names() -> list[str]:
    return sorted({_VERSIONED.match(p.name)["name"] for p in profile_files()})  # type: ignore[index]


def load_profile(name_or_path: str | os.PathLike[str] | Profile) -> Profile:
    """Load a profile by shipped name (``"qwen2.5-vl-7b"``) or by file path."""
    if isinstance(name_or_path, Profile):
        return name_or_path
    if isinstance(name_or_path, bytes) or not isinstance(name_or_path, (str, os.PathLike)):
        raise EraseTypeError(
            f"profile: expected a profile name, a YAML path or an erase.Profile, got {type(name_or_path).__name__}"
        )
    if isinstance(name_or_path, str) and not name_or_path.strip():
        raise ProfileError("profile: expected a profile name or a YAML path, got an empty string")
    text = check_path(name_or_path, "profile", ProfileError)
    if text == "auto":
        raise ProfileError(
            "profile 'auto' is chosen for a model: use erase.apply(model, 'auto'), "
            "erase.match_profile(model) or erase.resolve_profile('auto', model)"
        )
    if looks_like_path(text):
        return read_profile(text)
    candidates = [read_profile(p) for p in profile_files(text)]
    if not candidates:
        known = ", ".join(shipped_names()) or "none"
        raise ProfileError(f"unknown profile {text!r:.80}: not a file, and no profile of that name (known: {known})")
    return max(candidates, key=lambda p: p.profile_version)
