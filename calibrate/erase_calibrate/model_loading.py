"""Old name, kept until erase-eval's branch is rewired: models/ is the one model registry."""

from __future__ import annotations

from typing import Any

from . import models
from .models import DTYPES, LoadedModel, check_device, check_dtype  # noqa: F401


def load_model(model: str, **options: Any) -> LoadedModel:
    return models.load(model, **options)
