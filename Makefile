# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv (Python packages, incl. the PyPI reference servers) and install the npm
# reference servers and clients into tools/node/node_modules.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NODE_DIR := tools/node
PY_STAMP := $(VENV)/.quiver-installed
NODE_STAMP := $(NODE_DIR)/node_modules/.quiver-installed

.PHONY: setup demo test lint typecheck pytest bench clean

setup: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(BIN)/quiver demo --node-modules $(NODE_DIR)/node_modules

lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(PY_STAMP)
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

test: lint typecheck pytest

bench: setup
	$(BIN)/python bench/gateway_bench.py

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .mypy_cache .ruff_cache
