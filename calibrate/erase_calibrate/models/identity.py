"""Which model a profile was calibrated on, read from its config alone (no weights).

A model's identity is its revision and its architecture fingerprint:

- a hub id: the commit its revision (default `main`) resolves to, from the hub or, offline,
  from the local cache's refs;
- a folder inside the hub cache (`.../snapshots/<commit>/`): that commit;
- any other local folder: ``config-sha256:`` and the first 16 hex digits of the SHA-256 of its
  config.json, parsed and re-serialised with sorted keys and without ``transformers_version``
  (re-saving with a newer transformers changes that field, not the model). It covers the
  architecture and special tokens, not the weights: retrain in place and it stays the same.

The calibrator records exactly this revision, and `erase-calibrate check` compares against it.
Which spec names which folder is the registry's business (registry.py); this module only reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from erase import EraseError

from .registry import first_line

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SNAPSHOT = re.compile(r"snapshots/([0-9a-f]{40})(?:/|$)")
DIGEST_PREFIX = "config-sha256:"


def check_revision_option(model: str, path: str, revision: str | None) -> None:
    if revision is not None and os.path.exists(path):
        raise EraseError(f"--revision applies to hub ids; {model!r} is a local folder (its revision is its config.json digest)")


def load_config(model: str, path: str, revision: str | None = None) -> Any:
    """The transformers config at PATH (MODEL as the user named it); one-line errors for a model that does not exist."""
    from transformers import AutoConfig

    check_revision_option(model, path, revision)
    try:
        return AutoConfig.from_pretrained(path, revision=revision)
    except (OSError, ValueError) as exc:
        raise EraseError(f"cannot load model {model!r}: {first_line(exc)}") from None


def config_digest(folder: str | os.PathLike[str]) -> str | None:
    path = Path(folder) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict):
        data.pop("transformers_version", None)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return DIGEST_PREFIX + hashlib.sha256(blob).hexdigest()[:16]


def model_revision(path: str, revision: str | None = None) -> str | None:
    """The revision recorded in profiles: a commit for hub models, a config digest for plain folders."""
    if os.path.isdir(path):
        m = _SNAPSHOT.search(Path(path).resolve().as_posix() + "/")
        return m.group(1) if m else config_digest(path)
    from huggingface_hub import try_to_load_from_cache

    # the snapshot folder the hub cache holds this revision's config in is named by its commit
    cached = try_to_load_from_cache(path, "config.json", revision=revision)
    m = _SNAPSHOT.search(Path(cached).resolve().as_posix()) if isinstance(cached, str) else None
    if m:
        return m.group(1)
    return revision if revision and _COMMIT.match(revision) else None
