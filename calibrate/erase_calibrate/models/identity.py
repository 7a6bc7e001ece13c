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
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erase import EraseError, Fingerprint, fingerprint_of

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SNAPSHOT = re.compile(r"snapshots/([0-9a-f]{40})(?:/|$)")
DIGEST_PREFIX = "config-sha256:"


@dataclass(frozen=True)
class ModelIdentity:
    model: str  # as the user named it
    path: str  # what from_pretrained loads (a hub id or a folder)
    revision: str | None
    fingerprint: Fingerprint


def resolve_model_path(model: str) -> str:
    if model == "demo":
        from .demo.model import demo_model_path

        path = demo_model_path()
        if not Path(path).is_dir():
            raise EraseError(f"the demo model is missing at {path}; reinstall the project from its checkout")
        return str(path)
    return model


def check_revision_option(model: str, path: str, revision: str | None) -> None:
    if revision is not None and os.path.exists(path):
        raise EraseError(f"--revision applies to hub ids; {model!r} is a local folder (its revision is its config.json digest)")


def load_config(model: str, revision: str | None = None) -> tuple[str, Any]:
    """(path, transformers config) of MODEL; one-line errors for a model that does not exist."""
    from transformers import AutoConfig

    path = resolve_model_path(model)
    check_revision_option(model, path, revision)
    try:
        config = AutoConfig.from_pretrained(path, revision=revision)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EraseError(f"cannot load model {model!r}: {first}") from None
    return path, config


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


def identify(model: str, revision: str | None = None) -> ModelIdentity:
    """Revision and fingerprint of MODEL from its config; no weights are read."""
    path, config = load_config(model, revision)
    return ModelIdentity(model=model, path=path, revision=model_revision(path, revision), fingerprint=fingerprint_of(config))
