"""Which transformers releases ERASE is tested on, and the gate in `erase.apply`."""

from __future__ import annotations

import os
import warnings

import transformers
from packaging.version import Version

from ..errors import EraseError

# The releases scripts/transformers_matrix.sh has passed (docs/compatibility.md). Raising NEWEST
# means running the matrix on the new release and fixing what it finds; pyproject.toml's bound
# says the same thing.
OLDEST = "5.17.0"
NEWEST = "5.24.0"
UNTESTED_ENV = "ERASE_ALLOW_UNTESTED_TRANSFORMERS"


def transformers_version() -> str:
    return transformers.__version__


def supported_range() -> str:
    return f"{OLDEST} to {NEWEST}"


def _release(v: str) -> Version:
    parsed = Version(v)
    return Version(parsed.base_version)  # 5.25.0.dev0 is still 5.25.0 for the gate


def check_transformers() -> None:
    """Refuse an untested transformers release, unless the expert override is set (then warn)."""
    installed = transformers_version()
    if Version(OLDEST) <= _release(installed) <= Version(NEWEST):
        return
    msg = f"ERASE is tested on transformers {supported_range()}; this environment has {installed}"
    if os.environ.get(UNTESTED_ENV, "") not in ("", "0"):
        warnings.warn(f"{msg}; trying anyway ({UNTESTED_ENV} is set): the self-checks still guard the output", stacklevel=3)
        return
    raise EraseError(f"{msg} (set {UNTESTED_ENV}=1 to try anyway)")


def where() -> str:
    """Suffix for boundary errors: which transformers met the unexpected."""
    return f" (transformers {transformers_version()}; ERASE is tested on {supported_range()})"
