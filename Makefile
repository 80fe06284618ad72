# skysift: `make demo` builds and serves the demo; `make test` runs the whole suite.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean-demo

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/skysift demo

CHROMIUM ?= /usr/bin/chromium

test: install $(CHROMIUM)
	$(BIN)/pytest -q

# The explorer's browser tests drive Debian's chromium via pytest-playwright; `playwright install` cannot download here.
$(CHROMIUM):
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean-demo:
	rm -rf data/demo runs/demo artifacts
