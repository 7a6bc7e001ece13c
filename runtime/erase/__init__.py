"""ERASE runtime: entropy- and attention-based vision-token pruning for VLMs.

The runtime is thin: it reads a profile and prunes inside Hugging Face
``generate()``. It imports only torch, transformers, numpy, pyyaml and pillow.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from . import limits, stage1, stage2
from .apply import EraseHandle, apply
from .engine import ImageStats
from .errors import EraseError, EraseTypeError, EraseValueError, ImageError, ProfileError
from .matching import ProfileMatch, find_profile, fingerprint_of, match_profile, resolve_profile
from .profile import SCHEMA_VERSION, Fingerprint, Profile
from .registry import load_profile, shipped_names
from .strategy import Strategy, named_strategy

try:
    __version__ = _metadata.version("erase-toolkit")  # pyproject.toml's version, as installed
except _metadata.PackageNotFoundError:  # a source tree on sys.path, never installed
    __version__ = "0+unknown"

__all__ = [
    "EraseError",
    "EraseHandle",
    "EraseTypeError",
    "EraseValueError",
    "Fingerprint",
    "ImageStats",
    "ImageError",
    "Profile",
    "ProfileError",
    "ProfileMatch",
    "SCHEMA_VERSION",
    "Strategy",
    "__version__",
    "apply",
    "find_profile",
    "fingerprint_of",
    "limits",
    "load_profile",
    "match_profile",
    "named_strategy",
    "resolve_profile",
    "shipped_names",
    "stage1",
    "stage2",
]
