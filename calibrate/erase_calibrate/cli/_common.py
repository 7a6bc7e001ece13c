"""What every CLI shares: turning user errors into one line and an exit code.

A user's mistake (a bad option, a bad file, an unwritable output) prints
``PROG: error: MESSAGE`` on one line of stderr and exits 2; Ctrl-C or SIGTERM
prints ``PROG: interrupted...`` and exits 130. No traceback either way.
"""

from __future__ import annotations

import sys
from typing import Callable, NoReturn, Optional, Sequence

import typer

from erase import EraseError

from ..interrupts import EXIT_INTERRUPTED, Interrupted, handled

EXIT_USER_ERROR = 2


def _click_class(name: str) -> type[BaseException]:
    """A base class of typer's errors by name: typer re-exports click's, or vendors its own copy."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


_CLICK_EXCEPTION = _click_class("ClickException")


def _is(exc: BaseException, name: str) -> bool:
    return any(c.__name__ == name for c in type(exc).__mro__)


def one_line(message: str) -> str:
    """A message folded onto one line (click's and some libraries' messages span several)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def fail(prog: str, message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    raise SystemExit(code)


def interrupted(prog: str, message: str = "") -> NoReturn:
    print(f"{prog}: {one_line(message) or 'interrupted'}", file=sys.stderr)
    raise SystemExit(EXIT_INTERRUPTED)


def run(app: typer.Typer, prog: str) -> Callable[..., None]:
    """A console-script entry point that prints user errors as one line, no traceback.

    `main(argv)` takes the arguments (default: ``sys.argv[1:]``), so tests can run a
    command in-process; like click's standalone mode it always ends in `SystemExit`.
    """

    def main(argv: Optional[Sequence[str]] = None) -> None:
        with handled():  # SIGTERM unwinds like Ctrl-C
            try:
                code = app(args=None if argv is None else list(argv), prog_name=prog, standalone_mode=False)
            except _CLICK_EXCEPTION as exc:  # bad option values, unknown options, missing arguments
                if _is(exc, "NoArgsIsHelpError"):  # no arguments at all: the help, as before
                    exc.show()
                    raise SystemExit(exc.exit_code) from None
                hint = f" (see {prog} --help)" if _is(exc, "UsageError") else ""
                fail(prog, exc.format_message() + hint, exc.exit_code)
            except typer.Abort:  # EOF at a prompt, or Ctrl-C seen by click
                interrupted(prog)
            except Interrupted as exc:
                interrupted(prog, str(exc))
            except EraseError as exc:
                fail(prog, str(exc))
            except KeyboardInterrupt:
                interrupted(prog)
        if code == EXIT_INTERRUPTED:  # typer turns a KeyboardInterrupt into Exit(130), silently
            interrupted(prog)
        raise SystemExit(code if isinstance(code, int) else 0)  # as click's standalone mode ends

    return main
