# Two commands on a fresh machine: `make demo` and `make test` (each sets up .venv first).
# `make demo` needs only the core install (no PyTorch); `make test` adds every extra and ends
# by checking the package as pip builds and installs it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORE   := $(VENV)/.core-stamp
FULL   := $(VENV)/.full-stamp

.PHONY: setup core browser demo test check-install lint bench clean

core: $(CORE)
setup: $(FULL)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(CORE): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $(CORE)

# torch==2.13.0 first: it is the CPU wheel; a bare `torch` requirement would pull a CUDA build.
$(FULL): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,train,lite,kmedoids,serve,ray,foundation]'
	touch $(CORE) $(FULL)

# The report's browser test drives Debian's Chromium. Installed here when missing and we may
# (root + apt-get, as in CI); otherwise that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { apt-get install -y -q chromium >/dev/null 2>&1 \
	       || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; }; } \
	  || echo "chromium is not installed: the report's browser test will skip"

demo: core
	$(BIN)/imgatlas run samples/clothing --workspace out/demo.imgatlas --labels-from-folders

# The suite, then imgatlas as users install it: sdist -> wheel -> a fresh venv outside the
# checkout -> the default job, python -m imgatlas and serve (scripts/check_install.py, ~1.5 min).
test: setup browser
	$(BIN)/python -m pytest -q
	$(BIN)/python scripts/check_install.py

check-install: setup
	$(BIN)/python scripts/check_install.py

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/bench_embed.py

clean:
	rm -rf out .pytest_cache
