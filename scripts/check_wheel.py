"""The packaging test (`make check-wheel`): build the wheel, install it, use it from elsewhere.

1. `pip wheel --no-deps` builds the wheel; it must carry every shipped profile (profiles/*.yaml,
   as package `erase.profiles`) and the demo checkpoint (data_samples/demo-model, as
   `erase_calibrate.data_samples`).
2. A fresh virtualenv gets torch==2.13.0 first, then the wheel alone (the runtime install), with
   the lock as constraints. From a folder outside the checkout: `import erase` comes from the
   virtualenv, `erase.load_profile("qwen2.5-vl-7b")` works, `erase.__version__` is pyproject's
   version, optuna, datasets and scikit-image are not installed (typer only as transformers'
   own requirement), and every command says in one line what to install (exit 2).
3. The same virtualenv gets the `calibrate` extra: `erase-profile list` shows the shipped
   profiles, and `erase-calibrate --model demo` writes a profile that `erase-profile validate`
   accepts and `erase.load_profile` reads.

Usage: python scripts/check_wheel.py [--lock FILE] [--keep] [-- PIP OPTIONS FOR TORCH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[1]  # a repository tool, run from the checkout
TORCH = "torch==2.13.0"
COMMANDS = ("erase-calibrate", "erase-bench", "erase-demo", "erase-eval", "erase-inspect", "erase-profile")
CALIBRATOR_ONLY = ("optuna", "datasets", "scikit-image")  # never in a runtime install
CALIBRATE_ITERS = 2  # as issue #13 asks; every trial is feasible since calibration v2


class CheckFailed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)
    print(f"  ok  {message}", flush=True)


def project_version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if tomllib is not None:
        return tomllib.loads(text)["project"]["version"]
    return next(line.split('"')[1] for line in text.splitlines() if line.startswith("version = "))


def clean_env() -> dict[str, str]:
    """The caller's environment without anything that points Python or erase at the checkout."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "ERASE_PROFILE_PATH", "ERASE_DEMO_MODEL"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["HF_HUB_OFFLINE"] = "1"
    return env


def run(cmd: list[str], cwd: Path, *, ok: bool = True) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True)
    shown = " ".join(str(c) for c in cmd)
    print(f"  $ {shown}  ({time.monotonic() - started:.0f} s, exit {done.returncode})", flush=True)
    if ok and done.returncode != 0:
        raise CheckFailed(f"{shown} failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done


def expected_profiles() -> set[str]:
    return {p.name for p in (ROOT / "profiles").glob("*.yaml")}


def profile_names(files: set[str]) -> set[str]:
    """Profile names of file names (``demo.v1.yaml`` -> ``demo``), as erase.registry reads them."""
    return {re.sub(r"(\.v\d+)?\.ya?ml$", "", f) for f in files}


def check_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("erase/profiles/") and n.endswith(".yaml")}
    check(shipped == expected_profiles(), f"the wheel carries profiles/*.yaml as erase/profiles/ ({len(shipped)} files)")
    demo = {p.name for p in (ROOT / "data_samples" / "demo-model").iterdir() if p.is_file()}
    carried = {n.rsplit("/", 1)[1] for n in names if n.startswith("erase_calibrate/data_samples/demo-model/")}
    check(carried == demo, f"the wheel carries data_samples/demo-model ({len(carried)} files)")
    stray = sorted(n for n in names if n.startswith(("profiles/", "data_samples/", "tests/", "calibration/")))
    check(not stray, "no top-level data folders in the wheel")
    size = wheel.stat().st_size / 2**20
    print(f"  wheel {wheel.name}: {len(names)} files, {size:.1f} MiB", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", default=str(ROOT / "requirements" / "lock.txt"), help="constraints for the installs")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed) for a look afterwards")
    parser.add_argument("torch_pip_args", nargs="*", help="extra pip options for installing torch")
    args = parser.parse_args(argv)
    lock = str(Path(args.lock).resolve())
    work = Path(tempfile.mkdtemp(prefix="erase-wheel-"))  # outside the checkout
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    venv = work / "venv"
    py, pip = venv / "bin" / "python", [str(venv / "bin" / "python"), "-m", "pip"]
    started = time.monotonic()
    try:
        print(f"check-wheel: work folder {work}", flush=True)
        run([sys.executable, "-m", "venv", str(venv)], elsewhere)
        run([*pip, "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(ROOT)], elsewhere)
        (wheel,) = (work / "dist").glob("erase_toolkit-*.whl")
        check_wheel_contents(wheel)

        print("check-wheel: the runtime install (torch first, then the wheel without extras)", flush=True)
        run([*pip, "install", "-q", *args.torch_pip_args, "-c", lock, TORCH], elsewhere)
        run([*pip, "install", "-q", "-c", lock, str(wheel)], elsewhere)
        probe = (
            "import importlib.metadata as m, json, erase;"
            "p = erase.load_profile('qwen2.5-vl-7b');"
            "print(json.dumps({'file': erase.__file__, 'version': erase.__version__, 'profile': p.name,"
            " 'names': erase.shipped_names(),"
            " 'transformers_requires': [r.split(';')[0] for r in m.requires('transformers') or []]}))"
        )
        info = json.loads(run([str(py), "-c", probe], elsewhere).stdout)
        check(info["file"].startswith(str(venv)), f"import erase comes from the virtualenv ({info['file']})")
        check(info["profile"] == "qwen2.5-vl-7b", "erase.load_profile('qwen2.5-vl-7b') works")
        check(info["version"] == project_version(), f"erase.__version__ is pyproject's version ({info['version']})")
        names = profile_names(expected_profiles())
        check(set(info["names"]) == names, f"erase.shipped_names() lists the shipped profiles ({len(names)})")
        installed = run([*pip, "list", "--format=freeze"], elsewhere).stdout.lower()
        present = {line.split("==")[0] for line in installed.splitlines()}
        check(not present & set(CALIBRATOR_ONLY), f"none of {', '.join(CALIBRATOR_ONLY)} is installed")
        typer_from_transformers = any(r.replace(" ", "").startswith("typer") for r in info["transformers_requires"])
        check(
            "typer" not in present or typer_from_transformers,
            "typer is installed only as transformers' own requirement" if "typer" in present else "typer is not installed",
        )
        for command in COMMANDS:
            done = run([str(venv / "bin" / command), "--help"], elsewhere, ok=False)
            lines = done.stderr.strip().splitlines()
            check(
                done.returncode == 2 and len(lines) == 1 and "erase-toolkit[calibrate]" in lines[0],
                f"{command} without the calibrator: exit 2 and one line naming erase-toolkit[calibrate]",
            )

        print("check-wheel: the full install (the calibrate extra)", flush=True)
        run([*pip, "install", "-q", "-c", lock, f"{wheel}[calibrate]"], elsewhere)
        listed = run([str(venv / "bin" / "erase-profile"), "list"], elsewhere).stdout
        shown = {line.split()[0] for line in listed.splitlines() if line.strip()}
        check(shown == names, f"erase-profile list shows the shipped profiles ({', '.join(sorted(shown))})")
        out = work / "calibration"
        run([str(venv / "bin" / "erase-calibrate"), "--model", "demo", "--iters", str(CALIBRATE_ITERS),
             "--out", str(out), "--quiet"], elsewhere)
        written = sorted(out.glob("demo.v*.yaml"))
        check(len(written) == 1, f"erase-calibrate --model demo --iters {CALIBRATE_ITERS} wrote {written[0].name if written else 'no profile'}")
        run([str(venv / "bin" / "erase-profile"), "validate", str(written[0])], elsewhere)
        loaded = run([str(py), "-c", f"import erase; print(erase.load_profile({str(written[0])!r}).name)"], elsewhere)
        check(loaded.stdout.strip() == "demo", "the written profile validates and loads")
        report = work / "eval.json"
        run([str(venv / "bin" / "erase-eval"), "--model", "demo", "--methods", "base,erase", "--pruning", "0.85",
             "--limit", "4", "--json", str(report), "--cache-dir", str(work / "eval-cache"), "--quiet"], elsewhere)
        rows = json.loads(report.read_text())["rows"]
        check({(r["method"], r["pruning"]) for r in rows} == {("base", 0.0), ("erase", 0.85)},
              "erase-eval --model demo wrote a base row and an erase row at 85% from the installed wheel")
    except CheckFailed as exc:
        print(f"check-wheel: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"check-wheel: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"check-wheel: passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
