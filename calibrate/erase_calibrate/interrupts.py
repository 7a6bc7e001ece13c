"""Ctrl-C and SIGTERM: stop cleanly, never in the middle of a write.

The CLIs turn SIGTERM into the same `KeyboardInterrupt` as Ctrl-C (`handled`), so
both unwind through the same code: temp files are removed, a running trial is
marked failed, and the command prints one line and exits 130. Code that must not
be cut in half (an append to a study journal) runs inside `deferred()`: a signal
that arrives there is held until the block ends, then raised.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

EXIT_INTERRUPTED = 130

_depth = 0  # nesting of deferred() blocks in the main thread
_pending: int | None = None  # a signal that arrived inside one


class Interrupted(Exception):
    """A command stopped by Ctrl-C or SIGTERM; the message says what state it left."""

    exit_code = EXIT_INTERRUPTED


def _handler(signum: int, frame: Any) -> None:
    global _pending
    if _depth:
        _pending = signum
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the SIGINT / SIGTERM handler for the duration of a command (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT / SIGTERM until the block ends (only where `handled` installed the handler)."""
    global _depth, _pending
    main = threading.current_thread() is threading.main_thread()
    if main:
        _depth += 1
    try:
        yield
    finally:
        if main:
            _depth -= 1
            if not _depth and _pending is not None:
                signum, _pending = _pending, None
                raise KeyboardInterrupt(signal.Signals(signum).name)
