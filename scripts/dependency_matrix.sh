#!/usr/bin/env bash
# Run tests on several releases of one dependency (transformers or torch), one release after
# another, and print a table (Markdown) of the results.
#
#   scripts/dependency_matrix.sh PACKAGE [VERSION ...]   # default: every final release in pyproject's bound
#   TESTS=tests scripts/dependency_matrix.sh torch 2.11.0 # the whole suite instead of the runtime's tests
#   BASE=.venv-oldest scripts/dependency_matrix.sh torch 2.11.0   # over the lower bounds instead of the lock
#
# Each release gets a small overlay environment in .matrix/PACKAGE-VERSION that holds only that
# release (and whatever of its own requirements the base environment does not satisfy) on top of
# the project's .venv (`make setup`), so a release costs seconds to install instead of a whole
# environment. torch releases other than the local CPU build come from the registry as CUDA builds
# (several GB; they run on CPU too); this machine's pip cap on torch is lifted for the overlay only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 PACKAGE [VERSION ...]" >&2; exit 2; }
PKG=$1
shift
BASE=${BASE:-.venv}
TESTS=${TESTS:-tests/test_runtime_conformance.py tests/test_runtime_qwen25vl.py tests/test_runtime_families.py tests/test_hf_boundary.py tests/test_fidelity.py}
[ -x "$BASE/bin/python" ] || { echo "no $BASE: run 'make setup' first" >&2; exit 2; }
site=$("$BASE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

if [ $# -gt 0 ]; then
  versions=("$@")
else
  # every final release inside the bounds pyproject.toml declares
  mapfile -t versions < <(PKG="$PKG" "$BASE/bin/python" - <<'PY'
import os, re, subprocess, sys, tomllib
from packaging.requirements import Requirement
from packaging.version import Version
pkg = os.environ["PKG"]
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
spec = next((Requirement(d).specifier for d in deps if Requirement(d).name == pkg), None)
if spec is None:
    sys.exit(f"{pkg} is not a dependency in pyproject.toml")
out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", pkg], capture_output=True, text=True, check=True,
                     env={**os.environ, "PIP_CONSTRAINT": "/dev/null"}).stdout
avail = re.search(r"Available versions: (.*)", out).group(1).split(", ")
for v in sorted({Version(v) for v in avail if not Version(v).is_prerelease and not Version(v).local and Version(v) in spec}):
    print(v)
PY
)
  [ ${#versions[@]} -gt 0 ] || { echo "no release of $PKG to test" >&2; exit 2; }
fi

mkdir -p .matrix
printf '| %s | result |\n|---|---|\n' "$PKG"
status=0
for v in "${versions[@]}"; do
  name=$PKG-$v
  [ "$PKG" = transformers ] && name=$v  # the transformers matrix's own names, as documented
  env=.matrix/$name
  if [ ! -x "$env/bin/python" ]; then
    "$BASE/bin/python" -m venv "$env"
    envsite=$("$env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "import site; site.addsitedir('$site')" > "$envsite/_erase_base.pth"
  fi
  PIP_CONSTRAINT=/dev/null "$env/bin/python" -m pip install -q "$PKG==$v" > ".matrix/$name.install.log" 2>&1 \
    || { printf '| %s | install failed (.matrix/%s.install.log) |\n' "$v" "$name"; status=1; continue; }
  got=$("$env/bin/python" -c "import importlib.metadata as m; print(m.version('$PKG'))")
  [ "${got%%+*}" = "$v" ] || { printf '| %s | overlay resolved %s |\n' "$v" "$got"; status=1; continue; }
  # shellcheck disable=SC2086
  if HF_HUB_OFFLINE=1 "$env/bin/python" -m pytest -q -o addopts= -p no:cacheprovider $TESTS > ".matrix/$name.log" 2>&1; then
    printf '| %s | %s |\n' "$v" "$(tail -n 1 ".matrix/$name.log" | tr -d '=' | sed 's/^ *//;s/ *$//')"
  else
    printf '| %s | FAILED: %s (.matrix/%s.log) |\n' "$v" "$(tail -n 1 ".matrix/$name.log" | tr -d '=' | sed 's/^ *//;s/ *$//')" "$name"
    status=1
  fi
  [ "$PKG" = torch ] && rm -rf "$env"  # a CUDA build's overlay takes several GB; the log stays
done
exit $status
