# Two entry points for a fresh machine: `make demo` and `make test`.
# torch==2.13.0 goes in first so pip takes the local CPU build, never a CUDA one.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test postgres clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
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
	rm -rf $(VENV) out calibration
