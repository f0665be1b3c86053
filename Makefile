# Two commands on a fresh Debian machine: `make demo` and `make test`.
# Each installs what it needs first (a virtualenv from PyPI, system packages when missing).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo demo-direct test lint typecheck system-packages clean

$(STAMP): pyproject.toml
	scripts/ensure-python
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/xfq demo

# The same round through the application services in one process, 300,000 citizens.
demo-direct: $(STAMP)
	$(BIN)/xfq demo --direct

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

system-packages:
	scripts/ensure-system-packages

test: $(STAMP) system-packages lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var artifacts
