"""Model sources, one registry: `--model SPEC` of every command becomes a model here.

    from erase_calibrate import models

    loaded = models.load("demo")             # the shipped demo checkpoint
    loaded = models.load("tiny")             # an erase-bench preset (random weights)
    loaded = models.load("./ckpt")           # a local folder; anything else is a hub id
    loaded.model, loaded.processor, loaded.identity.revision, loaded.identity.fingerprint
    models.identify("Qwen/Qwen2.5-VL-7B-Instruct")   # revision and fingerprint, no weights

Sources (each a registration in its own module): `demo` (demo.py), `preset` (presets.py),
`folder` and `hub` (hub.py). `profile.template` builds the profile every command starts from.
"""

from __future__ import annotations

from . import demo, hub, presets  # noqa: F401 - registration order: demo, presets, folders, then hub ids
from .profile import for_loaded, profile_name, stage2_layers, template
from .registry import (
    DTYPES,
    LoadedModel,
    ModelIdentity,
    ModelSource,
    check_device,
    check_dtype,
    default_batch,
    default_tasks,
    find,
    identify,
    load,
    register,
    shipped_profile,
    sources,
)

__all__ = [
    "DTYPES",
    "LoadedModel",
    "ModelIdentity",
    "ModelSource",
    "check_device",
    "check_dtype",
    "default_batch",
    "default_tasks",
    "find",
    "identify",
    "load",
    "register",
    "shipped_profile",
    "sources",
    "for_loaded",
    "profile_name",
    "stage2_layers",
    "template",
]
