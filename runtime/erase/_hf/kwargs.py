"""The names under which transformers passes a forward its arguments, read strictly.

One table maps ERASE's logical names to the keyword each release uses. The
cache keyword moved (`past_key_values` up to 5.23, `cache` from 5.24), so it
is resolved per module from the forward's own signature; a module that takes
neither is refused. Reads of the arguments a caller always passes raise when
the key is absent, so a future rename fails loudly instead of reading None.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import EraseError
from .version import where

# The cache keyword, newest first; every other logical name is its own keyword.
CACHE_NAMES = ("cache", "past_key_values")
ENCODER_OUTPUTS = "mm_encoder_outputs"  # images already encoded by generate() (5.20 on)

# What each role's caller always passes by keyword (transformers' own call sites).
REQUIRED = {
    "entry": ("cache", "input_ids", "inputs_embeds", "attention_mask", "position_ids"),
    "layer": ("cache", "attention_mask", "position_embeddings", "position_ids"),
}


def _forward_params(module: nn.Module) -> set[str]:
    # inspect follows functools.wraps (deprecate_kwarg) to the real signature
    return set(inspect.signature(type(module).forward).parameters)


def cache_name(module: nn.Module) -> str:
    params = _forward_params(module)
    for name in CACHE_NAMES:
        if name in params:
            return name
    raise EraseError(
        f"{type(module).__name__}.forward takes none of {', '.join(CACHE_NAMES)}: ERASE cannot find its KV cache{where()}"
    )


@dataclass(frozen=True)
class ArgNames:
    """Keyword of each logical argument for one module."""

    role: str
    module: str
    cache: str

    def key(self, logical: str) -> str:
        return self.cache if logical == "cache" else logical


def call_args(module: nn.Module, role: str) -> ArgNames:
    if role not in REQUIRED:
        raise ValueError(f"unknown role {role!r}")
    return ArgNames(role, type(module).__name__, cache_name(module))


class CallArgs:
    """One call's (args, kwargs) seen through a module's `ArgNames`."""

    def __init__(self, names: ArgNames, args: tuple, kwargs: dict[str, Any]):
        self.names = names
        self.args = args
        self.kwargs = kwargs
        for logical in REQUIRED[names.role]:
            if names.key(logical) not in kwargs:
                stale = [n for n in CACHE_NAMES if n in kwargs and n != names.cache] if logical == "cache" else []
                extra = f" (it passed {stale[0]!r})" if stale else ""
                raise EraseError(
                    f"{names.module} was called without {names.key(logical)!r}{extra}: "
                    f"ERASE cannot follow this call{where()}"
                )

    def __getitem__(self, logical: str) -> Any:
        """A required argument (present by construction; its value may be None)."""
        return self.kwargs[self.names.key(logical)]

    def get(self, logical: str) -> Any:
        """An argument callers may leave out (pixel values, grids, encoder outputs...)."""
        return self.kwargs.get(self.names.key(logical))

    @property
    def cache(self) -> Any:
        return self["cache"]

    @property
    def hidden(self) -> Any:
        """A decoder layer's input hidden states (its first positional argument)."""
        if self.args:
            return self.args[0]
        if "hidden_states" in self.kwargs:
            return self.kwargs["hidden_states"]
        raise EraseError(f"{self.names.module} was called without hidden states{where()}")

    def replaced(self, base: dict[str, Any] | None = None, **logical: Any) -> dict[str, Any]:
        """A copy of the kwargs (or of `base`) with some logical arguments replaced."""
        out = dict(self.kwargs if base is None else base)
        for name, value in logical.items():
            out[self.names.key(name)] = value
        return out
