# skysift: `make demo` builds and serves the demo; `make test` runs the whole suite.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean-demo

install: $(STAMP)

# pip byte-compiles what it installs one file at a time (about half of a fresh install here); compileall
# does it on every core. Files that are not Python 3 (templates, tests for Python 2 in some wheels) fail
# to compile under either, which pip ignores too: hence `|| true`.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --no-compile -e '.[dev]'
	$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true
	touch $(STAMP)

demo: install
	$(BIN)/skysift demo

CHROMIUM ?= /usr/bin/chromium
COMPOSE ?= /usr/bin/docker-compose

# Two pytest-xdist workers (CI has two cores); whole files per worker, so a module's fixtures (a served
# version per engine, the benchmarks' smoke runs) are built once, not once per worker. The costliest
# files go first (tests/conftest.py, HEAVY_FIRST), in that order.
test: install $(CHROMIUM) $(COMPOSE)
	$(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# The explorer's browser tests drive Debian's chromium via pytest-playwright; `playwright install` cannot download here.
$(CHROMIUM):
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

# tests/test_docker_compose.py checks docker-compose.yml with Compose's own `config` (no Docker engine needed);
# Docker's compose plugin is not in Debian, its docker-compose (v1) is.
$(COMPOSE):
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y docker-compose

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean-demo:
	rm -rf data/demo runs/demo artifacts
