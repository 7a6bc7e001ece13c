"""Reference statistics that pruning methods read from the profile, computed on a model.

AdaVTP scales its threshold by the image's effective rank against the mean
over a reference set, and caps it by a statistic of that set
(`erase.adavtp`). These run the model's vision encoder on processor outputs
(calibration items) and return the statistics, or a profile holding them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from torch import nn

from . import adavtp
from .adapters import adapter_for
from .errors import EraseError
from .profile import AdaVTPReference, Profile


def adavtp_reference(model: nn.Module, inputs: Iterable[dict[str, Any]]) -> AdaVTPReference:
    """erank_avg and tau_max over every image of `inputs` (processor outputs, on the model's device)."""
    adapter = adapter_for(model)
    if adapter is None or not adapter.supports_vision_attention:
        raise EraseError(f"AdaVTP's reference statistics need a supported model, got {type(model).__name__}")
    try:
        return adavtp.reference_statistics(f for x in inputs for f in adapter.image_features(x))
    except ValueError as exc:
        raise EraseError(str(exc)) from None


def with_adavtp_reference(profile: Profile, model: nn.Module, inputs: Iterable[dict[str, Any]]) -> Profile:
    """`profile` with `methods.adavtp` computed on `inputs`."""
    reference = adavtp_reference(model, inputs)
    return profile.replace(methods=dataclasses.replace(profile.methods, adavtp=reference))
