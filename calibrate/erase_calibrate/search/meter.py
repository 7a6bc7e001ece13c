"""Counting the tokens the language model processes: batch x sequence length of every forward call.

A forward pre-hook on the language model (after Stage 1 has dropped tokens, so
kept tokens are what counts; left padding counts too): a prefill over B prompts
of padded length L adds B*L, a decode step adds B.
"""

from __future__ import annotations

from typing import Any

from erase.adapters import adapter_for


class TokenMeter:
    def __init__(self, model: Any):
        adapter = adapter_for(model)
        if adapter is None:
            raise ValueError(f"no ERASE adapter for {type(model).__name__}")
        self.tokens = 0
        self.calls = 0
        self._hook = adapter.text_model().register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple, kwargs: dict) -> None:
        x = kwargs.get("inputs_embeds")
        if x is None:
            x = kwargs.get("input_ids")
        if x is None and args:
            x = args[0]
        if x is not None and getattr(x, "dim", lambda: 0)() >= 2:
            self.tokens += int(x.shape[0]) * int(x.shape[1])
            self.calls += 1

    def close(self) -> None:
        self._hook.remove()
