#!/usr/bin/env bash
# Run the runtime's conformance tests on every transformers release in the supported range,
# one after another, and print a table (Markdown) of the results.
#
#   scripts/transformers_matrix.sh [VERSION ...]    # default: every release between the bounds
#
# Each release gets a small overlay environment in .matrix/VERSION that holds only transformers
# (and whatever of its own requirements the base .venv does not satisfy) on top of the project's
# .venv (`make setup`), so a release costs seconds to install instead of a whole environment.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-.venv}
TESTS=${TESTS:-tests/test_runtime_conformance.py tests/test_runtime_qwen25vl.py tests/test_runtime_families.py tests/test_hf_boundary.py tests/test_fidelity.py}
[ -x "$BASE/bin/python" ] || { echo "no $BASE: run 'make setup' first" >&2; exit 2; }
site=$("$BASE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

if [ $# -gt 0 ]; then
  versions=("$@")
else
  # every final release inside the bounds pyproject.toml declares
  mapfile -t versions < <("$BASE/bin/python" - <<'PY'
import re, subprocess, sys, tomllib
from packaging.specifiers import SpecifierSet
from packaging.version import Version
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
spec = SpecifierSet(next(re.sub(r"^transformers", "", d.split(";")[0]) for d in deps if d.startswith("transformers")))
out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "transformers"], capture_output=True, text=True, check=True).stdout
avail = re.search(r"Available versions: (.*)", out).group(1).split(", ")
for v in sorted({Version(v) for v in avail if not Version(v).is_prerelease and Version(v) in spec}):
    print(v)
PY
)
fi

printf '| transformers | result |\n|---|---|\n'
status=0
for v in "${versions[@]}"; do
  env=.matrix/$v
  if [ ! -x "$env/bin/python" ]; then
    "$BASE/bin/python" -m venv "$env"
    envsite=$("$env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "import site; site.addsitedir('$site')" > "$envsite/_erase_base.pth"
  fi
  "$env/bin/python" -m pip install -q "transformers==$v" > ".matrix/$v.install.log" 2>&1 \
    || { printf '| %s | install failed (.matrix/%s.install.log) |\n' "$v" "$v"; status=1; continue; }
  got=$("$env/bin/python" -c 'import transformers; print(transformers.__version__)')
  [ "$got" = "$v" ] || { printf '| %s | overlay resolved %s |\n' "$v" "$got"; status=1; continue; }
  # shellcheck disable=SC2086
  if HF_HUB_OFFLINE=1 "$env/bin/python" -m pytest -q -o addopts= -p no:cacheprovider $TESTS > ".matrix/$v.log" 2>&1; then
    printf '| %s | %s |\n' "$v" "$(tail -n 1 ".matrix/$v.log" | tr -d '=' | sed 's/^ *//;s/ *$//')"
  else
    printf '| %s | FAILED: %s (.matrix/%s.log) |\n' "$v" "$(tail -n 1 ".matrix/$v.log" | tr -d '=' | sed 's/^ *//;s/ *$//')" "$v"
    status=1
  fi
done
exit $status
