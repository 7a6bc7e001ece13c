"""List the direct dependencies that have releases newer than the installed ones (`make test-latest`).

Run with the Python of the environment to inspect. For each direct dependency of
pyproject.toml (the runtime's, and the calibrate and test extras') that `pip list --outdated`
reports, it says whether the newest release is inside the bounds (test-latest just tested it:
refresh the lock with `make lock`; for torch, which the lock holds at the Makefile's CPU build,
the torch matrix) or outside them (test it, then widen the bound). It only
reports: the exit status is 0 unless pip itself fails. In GitHub Actions the table also goes to
the job summary.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lock import direct_requirements as _requirement_strings  # scripts/lock.py, beside this file


def direct_requirements() -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, _requirement_strings())}


def main() -> int:
    direct = direct_requirements()
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--outdated", "--format=json"],
        capture_output=True, text=True, check=True,
    )
    rows = []
    for item in json.loads(listed.stdout):
        requirement = direct.get(canonicalize_name(item["name"]))
        if requirement is None:
            continue
        newest = item["latest_version"]
        inside = requirement.specifier.contains(newest, prereleases=False)
        if requirement.name == "torch" and inside:
            # the lock holds torch at the Makefile's CPU build; the others in the bound run in the matrix
            verdict = "inside the bounds: `scripts/dependency_matrix.sh torch`"
        else:
            verdict = "inside the bounds: `make lock`" if inside else "outside the bounds: test it, then widen"
        bounds = str(requirement.specifier) or "none"
        rows.append((requirement.name, re.sub(r"\+.*", "", item["version"]), newest, bounds, verdict))
    if not rows:
        lines = ["upstream watch: every direct dependency is at its newest release"]
    else:
        lines = [
            "upstream watch: direct dependencies with newer releases",
            "",
            "| package | installed | newest | bounds | newest is |",
            "|---|---|---|---|---|",
            *(f"| {' | '.join(row)} |" for row in sorted(rows)),
        ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
