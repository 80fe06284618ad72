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

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .

clean-demo:
	rm -rf data/demo runs/demo artifacts
