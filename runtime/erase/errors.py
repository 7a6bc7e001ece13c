"""Exceptions raised for user-facing faults.

Every message is one line that names what is wrong, so CLIs can print it
without a traceback. A caller's mistake never surfaces as an exception of a
dependency (PIL, yaml, numpy, torch): public functions check their arguments
at the door and raise one of these.

- `EraseError`: the base class; catch it to handle every user fault.
- `EraseTypeError` (also a `TypeError`): an argument of the wrong type.
- `EraseValueError` (also a `ValueError`): an argument or input with a wrong value.
- `ProfileError`, `ImageError` (`EraseValueError`s): a bad profile, a bad image.

Limits on untrusted files (image pixels, profile size and nesting) live in
`erase.limits`; going over one is an `ImageError` or a `ProfileError` whose
message says how to raise the limit.
"""

from __future__ import annotations


class EraseError(Exception):
    """Base class of every error the toolkit raises for bad input."""


class EraseTypeError(EraseError, TypeError):
    """An argument of a public function has the wrong type."""


class EraseValueError(EraseError, ValueError):
    """An argument or an input has a value the toolkit cannot use."""


class ProfileError(EraseValueError):
    """A profile file or object is malformed or does not fit the model."""


class ImageError(EraseValueError):
    """An image cannot be read or cannot be scored."""


