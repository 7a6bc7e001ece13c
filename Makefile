# Two entry points for a fresh machine: `make demo` and `make test`.
# torch==2.13.0 goes in first so pip takes the local CPU build, never a CUDA one; everything else
# comes from the lock (requirements/lock.txt), so every machine tests the same versions.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
# torch's lower bound in pyproject.toml, for test-oldest: a CUDA build from the registry (about
# 2.6 GB with its libraries; it runs on CPU), since the CPU build on these machines is 2.13.0 alone.
OLDEST_TORCH := torch==2.11.0
# Extra pip options for torch alone, e.g. --index-url https://download.pytorch.org/whl/cpu on a
# machine without the local CPU wheel (the scheduled GitHub workflow).
TORCH_PIP_ARGS ?=
LOCK := requirements/lock.txt
OLDEST := requirements/oldest.txt
TOOLS := requirements/tools.txt
# Lower bounds to test below pyproject's (NAME==VERSION ...), e.g. before widening a bound.
OLDEST_OVERRIDES ?=
# What test-oldest runs: the runtime's tests (the adapters' conformance suite first).
OLDEST_TESTS ?= tests/test_runtime_conformance.py tests/test_runtime_families.py \
  tests/test_runtime_qwen25vl.py tests/test_hf_boundary.py tests/test_fidelity.py tests/test_matching.py \
  tests/test_stage1.py tests/test_profile.py tests/test_pixels.py

.PHONY: setup demo test test-latest test-oldest check-wheel lint-workflows lock postgres clean

setup: $(VENV)/.installed

# The lock, then the project itself without resolving again; pip check proves they agree.
$(VENV)/.installed: pyproject.toml setup.py $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH_PIP_ARGS) -c $(LOCK) $(TORCH)
	$(BIN)/pip install -q -r $(LOCK)
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	touch $@

# The main job on the embedded demo model: calibrate it (a few minutes on CPU), then compare
# answers, tokens kept and prefill time without and with the new profile.
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/erase-calibrate --model demo --alpha 0.65 --iters 30 --out calibration
	HF_HUB_OFFLINE=1 $(BIN)/erase-demo --calibration calibration

# The scale-out tests start a PostgreSQL server from the distribution's binaries. As root (CI),
# install them when missing; otherwise those tests skip with the reason.
test: setup postgres
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# The upstream watch: the newest releases pyproject.toml's bounds allow, in a fresh .venv-latest,
# then the whole suite; it lists direct dependencies with releases beyond the bounds. torch stays
# at TORCH (newer ones are CUDA builds here; scripts/dependency_matrix.sh torch covers the range).
test-latest: postgres
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install -q $(TORCH_PIP_ARGS) $(TORCH)
	echo "$(TORCH)" > .venv-latest/torch.txt
	.venv-latest/bin/pip install -q -c .venv-latest/torch.txt --upgrade --upgrade-strategy eager -e ".[calibrate,test]"
	.venv-latest/bin/pip check
	.venv-latest/bin/python scripts/upstream_watch.py
	HF_HUB_OFFLINE=1 .venv-latest/bin/python -m pytest

# The runtime's tests on the lower bounds (OLDEST_TORCH, then requirements/oldest.txt: transformers
# 5.17.0 and every other direct dependency at its lower bound). The project goes in with --no-deps;
# pip check proves the pins satisfy it (an OLDEST_OVERRIDES pin below a bound would be reported).
.venv-oldest/.installed: pyproject.toml setup.py $(OLDEST) Makefile
	rm -rf .venv-oldest
	$(PYTHON) -m venv .venv-oldest
	.venv-oldest/bin/pip install -q $(TORCH_PIP_ARGS) -c $(OLDEST) $(OLDEST_TORCH)
	.venv-oldest/bin/pip install -q -r $(OLDEST)
	.venv-oldest/bin/pip install -q --no-deps -e .
	.venv-oldest/bin/pip check
	touch $@

test-oldest: .venv-oldest/.installed
	@echo "test-oldest: $(OLDEST_TORCH) $$(grep -E '^(transformers|numpy)==' $(OLDEST) | tr '\n' ' ')"
	HF_HUB_OFFLINE=1 .venv-oldest/bin/python -m pytest $(OLDEST_TESTS)

# Build the wheel and install it into a fresh virtualenv outside the checkout: runtime-only,
# then with the calibrator (scripts/check_wheel.py says what it checks).
check-wheel:
	$(PYTHON) scripts/check_wheel.py --lock $(LOCK) -- $(TORCH_PIP_ARGS)

.venv-tools/.installed: $(TOOLS)
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/pip install -q -r $(TOOLS)
	touch $@

# actionlint (config: .github/actionlint.yaml) and zizmor on the workflows; errors fail.
lint-workflows: .venv-tools/.installed
	.venv-tools/bin/actionlint
	.venv-tools/bin/zizmor --offline .github/

# Re-resolve requirements/*.txt after a change of bounds in pyproject.toml (see CHANGELOG.md).
lock: .venv-tools/.installed
	.venv-tools/bin/python scripts/lock.py $(addprefix --oldest-override ,$(OLDEST_OVERRIDES))

postgres:
	@if ! command -v /usr/lib/postgresql/*/bin/pg_ctl > /dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1; then \
	    echo "installing PostgreSQL (Debian package) for the scale-out tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql > /dev/null) \
	      || echo "could not install PostgreSQL: its tests will skip"; \
	  else \
	    echo "no PostgreSQL server binaries and not root: the PostgreSQL tests will skip"; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) .venv-latest .venv-oldest .venv-tools out calibration dist
