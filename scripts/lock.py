"""Regenerate the pinned requirement files from pyproject.toml's bounds: ``make lock``.

    requirements/lock.txt    the newest releases the bounds allow, resolved today; `make test`
                             (and so CI) installs exactly these
    requirements/oldest.in   every direct dependency at its lower bound (written here)
    requirements/oldest.txt  oldest.in resolved; `make test-oldest` installs exactly these
    requirements/tools.txt   the CI tools of requirements/tools.in (pip-tools, actionlint, zizmor)

Resolution is pip-compile's (pip-tools, pinned in tools.txt) against the package registry
alone: pip's configuration files are ignored, so a mirror configured on one machine cannot
leak into the files. torch's CPU build comes from ``PIP_FIND_LINKS`` (on these machines the
folder /opt/wheels); torch itself is left out of the files (the Makefile installs it before
anything else: torch==2.13.0 for the lock, pyproject's lower bound for test-oldest), and a file
naming a CUDA package or torchvision is refused.

Usage: python scripts/lock.py [--oldest-override NAME==VERSION ...]
An override replaces a lower bound in oldest.in, e.g. to test a release below pyproject's
bound before widening it (test-oldest then installs the project with --no-deps).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]  # pip-tools depends on it there

ROOT = Path(__file__).resolve().parents[1]  # a repository tool, run from the checkout
REQ = ROOT / "requirements"
EXTRAS = ("calibrate", "test")
NOT_PINNED = ("torch",)  # installed first, as the CPU build, by the Makefile
FORBIDDEN = re.compile(r"^((?:nvidia-|cuda-|triton|torchvision)[\w.-]*)", re.I | re.M)
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")
_LOWER = re.compile(r">=\s*([0-9][^,\s]*)")


def direct_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    return [*project["dependencies"], *(r for extra in EXTRAS for r in extras.get(extra, []))]


def lower_bounds(overrides: dict[str, str]) -> list[str]:
    """`name==lower` for every direct requirement with a `>=` bound; overrides win.

    torch's line is a comment: below 2.13 the registry has only CUDA builds, which the files must
    not name, so `make test-oldest` installs torch at its lower bound itself (OLDEST_TORCH).
    """
    pins = []
    for requirement in direct_requirements():
        m = _REQUIREMENT.match(requirement)
        if m is None:
            raise SystemExit(f"lock: cannot read requirement {requirement!r} in pyproject.toml")
        name, spec = m[1], m[2]
        lower = _LOWER.search(spec)
        version = overrides.pop(name.lower(), None) or (lower[1] if lower else None)
        if version is None:
            raise SystemExit(f"lock: {requirement!r} has no lower bound: give every dependency one (>=)")
        pins.append(f"# {name}=={version}: installed first by the Makefile" if name.lower() in NOT_PINNED else f"{name}=={version}")
    if overrides:
        raise SystemExit(f"lock: overrides for packages that are not direct dependencies: {sorted(overrides)}")
    return pins


def makefile_torch(variable: str = "TORCH") -> str:
    """The torch a Makefile variable installs (`TORCH := torch==...`, the lock's; `OLDEST_TORCH`, test-oldest's)."""
    m = re.search(rf"^{variable}\s*:=\s*(torch==\S+)\s*$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    if m is None:
        raise SystemExit(f"lock: the Makefile names no {variable} := torch==VERSION")
    return m[1]


def compile_(output: Path, *inputs: str) -> None:
    # The registry only (no machine's mirrors); the files' headers name `make lock`. torch is held
    # at the Makefile's CPU build, else the newest release the bound allows (a CUDA build) is taken.
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "CUSTOM_COMPILE_COMMAND": "make lock"}
    with tempfile.TemporaryDirectory() as tmp:
        constraint = Path(tmp) / "torch.txt"
        constraint.write_text(makefile_torch() + "\n", encoding="utf-8")
        cmd = [
            sys.executable, "-m", "piptools", "compile", "--quiet", "--upgrade", "--strip-extras", "--no-emit-index-url",
            "--no-emit-find-links", "--no-emit-trusted-host", "--newline", "LF",
            *(f"--unsafe-package={name}" for name in NOT_PINNED), f"--constraint={constraint}",
            "--output-file", str(output.relative_to(ROOT)), *inputs,
        ]
        print(f"lock: {output.relative_to(ROOT)} <- {' '.join(inputs)}", flush=True)
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    text = output.read_text(encoding="utf-8")
    bad = sorted(set(FORBIDDEN.findall(text)))
    if bad:
        raise SystemExit(
            f"lock: {output.name} names {bad}: torch came from the registry's CUDA build; "
            "point PIP_FIND_LINKS (or PIP_EXTRA_INDEX_URL) at torch 2.13.0's CPU build and rerun"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oldest-override", action="append", default=[], metavar="NAME==VERSION")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.oldest_override:
        name, sep, version = item.partition("==")
        if not sep or not name or not version:
            parser.error(f"--oldest-override {item!r}: expected NAME==VERSION")
        overrides[name.strip().lower()] = version.strip()

    compile_(REQ / "tools.txt", "requirements/tools.in")
    compile_(REQ / "lock.txt", *(f"--extra={e}" for e in EXTRAS), "pyproject.toml")

    pins = lower_bounds(dict(overrides))
    oldest_in = REQ / "oldest.in"
    oldest_in.write_text(
        "# Every direct dependency at its lower bound in pyproject.toml, for `make test-oldest`.\n"
        "# Written by `make lock` (scripts/lock.py); edit the bounds in pyproject.toml, not this file.\n"
        + "".join(f"# override: {n}=={v} (--oldest-override)\n" for n, v in sorted(overrides.items()))
        + "".join(f"{pin}\n" for pin in pins),
        encoding="utf-8",
    )
    compile_(REQ / "oldest.txt", "requirements/oldest.in")
    print("lock: done; review `git diff requirements/` and run `make test test-oldest`")


if __name__ == "__main__":
    main(sys.argv[1:])
