"""The console scripts, which also exist in a runtime-only install.

``pip install erase-toolkit`` installs the runtime and these commands, but not the
calibrator's dependencies: those come with the ``calibrate`` extra. Before importing a
command, its entry point checks that the extra's distributions are installed; when one is
missing it says in one line what to install (exit 2) instead of a traceback.

This module imports nothing beyond the standard library until the check has passed.
"""

from __future__ import annotations

import importlib
import re
import sys
from importlib import metadata

DISTRIBUTION = "erase-toolkit"
EXTRA = "calibrate"
EXIT_USER_ERROR = 2  # as erase_calibrate.cli._common, which needs typer and so cannot be imported yet
COMMANDS = {  # console script -> the module whose `main` runs it
    "erase-calibrate": "erase_calibrate.cli.calibrate_cmd",
    "erase-bench": "erase_calibrate.cli.bench_cmd",
    "erase-demo": "erase_calibrate.cli.demo_cmd",
    "erase-eval": "erase_calibrate.cli.eval_cmd",
    "erase-inspect": "erase_calibrate.cli.inspect_cmd",
    "erase-profile": "erase_calibrate.cli.profile_cmd",
}

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def missing_requirements(extra: str = EXTRA) -> list[str]:
    """Distributions required by `extra` that are not installed ([] when the project itself is not
    installed, e.g. a checkout on ``sys.path``: then nothing can be checked)."""
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    missing = []
    for requirement in requires:
        requirement_part, _, marker = requirement.partition(";")
        name = _NAME.match(requirement_part)
        if name is None or extra not in _EXTRA_MARKER.findall(marker):
            continue
        try:
            metadata.version(name[1])
        except metadata.PackageNotFoundError:
            missing.append(name[1])
    return missing


def _run(prog: str) -> None:
    missing = missing_requirements()
    if missing:
        print(
            f"{prog}: error: needs the calibrator's dependencies (missing: {', '.join(missing)}); "
            f"install them with: pip install '{DISTRIBUTION}[{EXTRA}]'",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USER_ERROR)
    importlib.import_module(COMMANDS[prog]).main()


def calibrate() -> None:
    _run("erase-calibrate")


def bench() -> None:
    _run("erase-bench")


def demo() -> None:
    _run("erase-demo")


def eval() -> None:  # noqa: A001 - the console script's name
    _run("erase-eval")


def inspect() -> None:
    _run("erase-inspect")


def profile() -> None:
    _run("erase-profile")
