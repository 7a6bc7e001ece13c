"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import EraseError
from .limits import check_path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike[str], what: str = "output", *, folder: bool = False) -> Path:
    """Refuse, before any work, an output path that cannot be written; create nothing that stays.

    The nearest existing folder on the way is probed with a real temporary file (permission
    bits say nothing for root, or on a read-only mount). `folder`: `path` is an output folder.
    """
    path = Path(check_path(path, what))
    if path.exists() and not folder and path.is_dir():
        raise EraseError(f"{what} {path}: cannot write: is a directory")
    probe = path.absolute() if folder else path.absolute().parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(f"{probe} is not a folder")
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise EraseError(f"{what} {path}: cannot write there ({exc.strerror or exc})") from None
    if not folder and path.exists() and not os.access(path, os.W_OK):
        raise EraseError(f"{what} {path}: cannot write: permission denied")
    return path


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write to a temp file beside `path`, then rename over it."""
    path = Path(check_path(path, "output"))
    if path.is_dir():
        raise EraseError(f"{path}: cannot write: is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise EraseError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise EraseError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
