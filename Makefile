# kmed: the two commands of the README. Each does its own set-up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kmed-installed

.PHONY: demo test lint typecheck unit bench clean sysdeps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

## make demo: start an HSS and a CNN on loopback and run the KME showcase
demo: $(STAMP)
	$(BIN)/kmed demo

## make test: lint, type-check and run the whole test suite
test: $(STAMP) sysdeps lint typecheck unit

# System tools the interop tests use (freeDiameterd, tshark); installed when we are root.
sysdeps:
	@bash tools/install-system-deps --if-root

lint: $(STAMP)
	$(BIN)/ruff check kmed tests tools

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/kmed bench all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
