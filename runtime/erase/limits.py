"""Limits on untrusted files, and the one place that reads them.

Every image and profile file the toolkit reads (the CLIs and the Python API
alike) goes through here, so a hostile or broken file ends in a one-line
`ImageError` / `ProfileError`, never in a hang, a traceback or an exhausted
machine:

- a path must name a regular file: a FIFO, a device, a socket or a folder is
  refused before anything is read (opening a FIFO would block forever);
- an image may hold at most `max_image_pixels()` pixels (150 million unless
  ``ERASE_MAX_IMAGE_PIXELS`` says otherwise) and an aspect ratio of at most
  200:1 (what the Qwen processors accept), both checked on the header,
  before the pixels are decoded; truncated pixel data is refused;
- a profile file may hold at most `max_profile_bytes()` bytes (1 MiB unless
  ``ERASE_MAX_PROFILE_BYTES`` says otherwise), nested at most
  `max_profile_depth()` levels deep (16 unless ``ERASE_MAX_PROFILE_DEPTH`` says
  otherwise), and only plain data: no anchors or aliases (which expand
  exponentially), no explicit tags (``!!int``, ``!!python/...``), no duplicate
  keys; dates stay strings.

The numeric ranges of profile fields that size an allocation
(pixels per token, processor pixel bounds and the tokens they make, level
count) are here too, and the profile parser checks them. docs/errors.md lists every limit.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import warnings
from typing import IO, Any, Iterator

import yaml

from .errors import EraseTypeError, EraseValueError, ImageError, ProfileError

ENV_IMAGE_PIXELS = "ERASE_MAX_IMAGE_PIXELS"
ENV_PROFILE_BYTES = "ERASE_MAX_PROFILE_BYTES"
ENV_PROFILE_DEPTH = "ERASE_MAX_PROFILE_DEPTH"

DEFAULT_IMAGE_PIXELS = 150_000_000  # 150 megapixels: a 14142 x 10607 photo
DEFAULT_PROFILE_BYTES = 1 << 20  # shipped profiles are about 1 KiB
DEFAULT_PROFILE_DEPTH = 16  # a profile is 4 levels deep
MAX_ASPECT_RATIO = 200  # the Qwen processors refuse more extreme images

# Ranges of profile fields that size an allocation (see profile.py).
MAX_PIXELS_PER_TOKEN = 256  # real models: 28 (Qwen2.5-VL, InternVL3), 32 (Qwen3-VL)
MAX_PROCESSOR_PIXELS = 1 << 26  # min_pixels / max_pixels: 67,108,864 = 8192 x 8192
MAX_TOKENS_PER_IMAGE = 1 << 18  # min_pixels / max_pixels in tokens: 262,144 (the Qwen default max is 16,384)
MAX_LEVELS = 16  # complexity levels (the paper uses 4)
MAX_LAYERS = 4096
MAX_HIDDEN_SIZE = 1 << 20


def _env_limit(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise EraseValueError(f"{name}={text!r}: expected a positive whole number")
    return value


def max_image_pixels() -> int:
    """Most pixels an image may have (width x height): ``ERASE_MAX_IMAGE_PIXELS``, default 150 million."""
    return _env_limit(ENV_IMAGE_PIXELS, DEFAULT_IMAGE_PIXELS)


def max_profile_bytes() -> int:
    """Largest profile file read: ``ERASE_MAX_PROFILE_BYTES``, default 1 MiB."""
    return _env_limit(ENV_PROFILE_BYTES, DEFAULT_PROFILE_BYTES)


def max_profile_depth() -> int:
    """Deepest nesting of mappings and lists in a profile: ``ERASE_MAX_PROFILE_DEPTH``, default 16."""
    return _env_limit(ENV_PROFILE_DEPTH, DEFAULT_PROFILE_DEPTH)


# --------------------------------------------------------------------------- files


def check_path(path: Any, what: str, error: type[EraseValueError] = EraseValueError) -> str:
    """`path` as a str, or a one-line error for what cannot be a file path (None, "", a NUL byte)."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise EraseTypeError(f"{what}: expected a file path (str or os.PathLike), got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise EraseTypeError(f"{what}: expected a str file path, got {type(text).__name__}")
    if not text.strip():
        raise error(f"{what}: the path is empty")
    if "\0" in text:
        raise error(f"{what} {text!r}: the path contains a NUL character")
    return text


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a special file"


@contextlib.contextmanager
def open_regular(path: Any, what: str, error: type[EraseValueError] = EraseValueError) -> Iterator[IO[bytes]]:
    """Open a regular file for reading; refuse folders, FIFOs, devices and sockets without blocking.

    The file is opened non-blocking and checked with fstat on the open descriptor, so a FIFO
    never blocks and a path swapped between check and open is still caught.
    """
    text = check_path(path, what, error)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    if not getattr(os, "O_NONBLOCK", 0):  # no non-blocking open (Windows): check before opening
        try:
            mode = os.stat(text).st_mode
        except OSError:
            mode = stat.S_IFREG  # the open below reports it
        if not stat.S_ISREG(mode):
            raise error(f"{text}: is {_kind(mode)}, not a regular file")
    try:
        fd = os.open(text, flags)
    except FileNotFoundError:
        raise error(f"{text}: no such {what} file") from None
    except IsADirectoryError:
        raise error(f"{text}: is a directory, not a regular file") from None
    except OSError as exc:
        raise error(f"{text}: cannot open {what} file: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{text}: is {_kind(mode)}, not a regular file")
        if getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh


def read_limited(path: Any, what: str, limit: int, error: type[EraseValueError], env: str | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or a one-line `error`."""
    with open_regular(path, what, error) as fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            data = fh.read(limit + 1) if size <= limit else b""
        except OSError as exc:
            raise error(f"{os.fspath(path)}: cannot read {what} file: {exc.strerror or exc}") from None
    if size > limit or len(data) > limit:
        how = f"; raise the limit with {env}=BYTES if the file is trusted" if env else ""
        raise error(f"{os.fspath(path)}: {what} file is larger than {limit:,} bytes{how}")
    return data


# --------------------------------------------------------------------------- images


def check_image_size(width: int, height: int, source: str) -> None:
    """Refuse an empty image, one over the pixel limit, or one thinner than 1:200; before decoding."""
    if width < 1 or height < 1:
        raise ImageError(f"{source}: empty image ({width}x{height})")
    limit = max_image_pixels()
    if width * height > limit:
        raise ImageError(
            f"{source}: {width}x{height} image has {width * height:,} pixels, over the limit of {limit:,}; "
            f"raise it with {ENV_IMAGE_PIXELS}=N if the image is trusted"
        )
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT_RATIO:
        raise ImageError(
            f"{source}: {width}x{height} image has an aspect ratio of {ratio:.0f}:1, over the processors' "
            f"limit of {MAX_ASPECT_RATIO}:1"
        )


_PIL_LOCK = threading.Lock()


@contextlib.contextmanager
def pil_header_only() -> Iterator[None]:
    """Around `PIL.Image.open` (which reads the header only): our pixel limit replaces PIL's bomb check.

    PIL refuses images over twice its own threshold with a message of its own, and warns
    above it; the caller checks `max_image_pixels()` on the header right after opening
    instead, so the limit (and its message) is the same everywhere and can be raised.
    PIL's threshold is a module global: it is lifted under a lock, for the header read only.
    """
    from PIL import Image

    with _PIL_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


# --------------------------------------------------------------------------- YAML


class _PlainLoader(yaml.SafeLoader):
    """A YAML loader for plain data only: mappings, lists, strings, numbers, booleans, null.

    Refuses anchors and aliases (a few lines of aliases expand to billions of nodes), explicit
    tags, duplicate keys and nesting deeper than the limit; leaves dates as strings, so a
    malformed date is a string, not a constructor crash.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._max_depth = max_profile_depth()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _refusal(event, f"alias *{event.anchor} is not allowed (write plain data, without anchors and aliases)")
        if event.anchor is not None:
            raise _refusal(event, f"anchor &{event.anchor} is not allowed (write plain data, without anchors and aliases)")
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):
            raise _refusal(event, f"tag {_short_tag(tag)} is not allowed (write plain values, without tags)")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self._depth += 1
            if self._depth > self._max_depth:
                raise _refusal(
                    event, f"nested more than {self._max_depth} levels deep (raise the limit with {ENV_PROFILE_DEPTH}=N)"
                )
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r} (first at line {seen[key_node.value].line + 1})",
                        key_node.start_mark,
                    )
                seen[key_node.value] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:
            value = f" {node.value[:40]!r}" if isinstance(node.value, str) else ""
            raise yaml.constructor.ConstructorError(None, None, f"cannot read value{value}: {exc}", node.start_mark) from None


_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _short_tag(tag: str) -> str:
    return "!!" + tag[len("tag:yaml.org,2002:") :] if tag.startswith("tag:yaml.org,2002:") else tag


def _refusal(event: Any, problem: str) -> yaml.YAMLError:
    return yaml.composer.ComposerError(None, None, problem, event.start_mark)


def load_plain_yaml(text: str, source: str, error: type[EraseValueError] = ProfileError) -> Any:
    """Parse one YAML document of plain data (see `_PlainLoader`), or raise a one-line `error`."""
    try:
        loader = _PlainLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or "invalid YAML").split())
        raise error(f"{source}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise error(f"{source}: YAML nested too deeply") from None


def read_profile_text(path: Any) -> str:
    """The text of a profile file: a regular file within the size limit, in UTF-8."""
    data = read_limited(path, "profile", max_profile_bytes(), ProfileError, ENV_PROFILE_BYTES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{os.fspath(path)}: not a text file (invalid UTF-8 at byte {exc.start})") from None
