"""The runtime stays thin, the layout gives project-owned import names, installs carry their data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = ("optuna", "datasets", "typer", "skimage", "erase_calibrate", "click", "matplotlib")


def test_runtime_imports_no_calibrator_dependencies():
    code = (
        "import sys, json, erase, erase.stage1, erase.imaging, erase.pixels, erase.registry;"
        "erase.load_profile('qwen2.5-vl-7b');"
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "erase" in loaded
    assert not loaded & set(FORBIDDEN), loaded & set(FORBIDDEN)


def test_packages_live_under_project_names():
    import erase
    import erase_calibrate

    assert erase.__file__.replace("\\", "/").endswith("runtime/erase/__init__.py")
    assert erase_calibrate.__file__.replace("\\", "/").endswith("calibrate/erase_calibrate/__init__.py")
    assert erase_calibrate.__version__ == erase.__version__


def test_version_comes_from_the_installed_metadata():
    from importlib import metadata

    import erase

    assert erase.__version__ == metadata.version("erase-toolkit")


def test_shipped_data_is_package_data():
    """Profiles and the demo checkpoint are found through importlib.resources, as in a wheel."""
    from importlib import resources

    import erase
    from erase_calibrate.models.demo import demo_model_path

    shipped = erase.registry.SHIPPED_DIR
    assert shipped == Path(str(resources.files("erase.profiles")))
    assert {p.name for p in shipped.glob("*.yaml")} == {p.name for p in (ROOT / "profiles").glob("*.yaml")}
    demo = demo_model_path()
    assert demo == Path(str(resources.files("erase_calibrate.data_samples") / "demo-model"))
    assert (demo / "config.json").is_file()


def test_packages_find_nothing_relative_to_their_source_files():
    """Data is read as package data, never by walking up from a module's file."""
    sources = [*(ROOT / "runtime" / "erase").rglob("*.py"), *(ROOT / "calibrate" / "erase_calibrate").rglob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in sources if "__file__" in p.read_text(encoding="utf-8")]
    assert not offenders, offenders


def test_every_command_goes_through_the_runtime_only_guard():
    import importlib
    import tomllib

    from erase_calibrate.cli import entry

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert set(scripts) == set(entry.COMMANDS)
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        assert module == entry.__name__ and callable(getattr(entry, function)), target
        assert callable(importlib.import_module(entry.COMMANDS[name]).main), name


def test_guard_names_the_extra_when_its_packages_are_missing(monkeypatch, capsys):
    from erase_calibrate.cli import entry

    assert entry.missing_requirements() == []  # this environment has the calibrate extra
    requires = ['optuna<5.1,>=5.0; extra == "calibrate"', 'no-such-package-for-erase>=1; extra == "calibrate"',
                'also-missing-but-for-tests>=1; extra == "test"', "numpy>=1.26"]
    monkeypatch.setattr(entry.metadata, "requires", lambda dist: requires)
    assert entry.missing_requirements() == ["no-such-package-for-erase"]
    with pytest.raises(SystemExit) as exc:
        entry.calibrate()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "no-such-package-for-erase" in err and "pip install 'erase-toolkit[calibrate]'" in err


def test_test_oldest_installs_every_lower_bound():
    """What `make test-oldest` installs is pyproject's lower bounds: oldest.in's pins, and torch from the Makefile."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import lock  # scripts/lock.py: the project's own reading of pyproject and the Makefile
    finally:
        sys.path.remove(str(ROOT / "scripts"))

    bounds = {}
    for req in map(Requirement, lock.direct_requirements()):
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{req} has no single lower bound"
        bounds[req.name.lower()] = Version(lower[0])
    pins = dict(re.findall(r"^([A-Za-z0-9][\w.-]*)==(\S+)$", (ROOT / "requirements/oldest.in").read_text(), re.M))
    assert "torch" not in pins, "oldest.in pins torch; the Makefile installs it (OLDEST_TORCH)"
    pins["torch"] = lock.makefile_torch("OLDEST_TORCH").partition("==")[2]
    assert {k.lower(): Version(v) for k, v in pins.items()} == bounds
