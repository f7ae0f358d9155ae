# spendlab: two commands set everything up on a fresh machine with Python 3.11 and make.
#   make run    the main job on the embedded CDNOW dataset
#   make test   the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: run test install install-test ui bench docs clean

# Packages go in with uv (from PyPI, into the venv): the same versions pip resolves, in about
# 10 s instead of about 65 s (docs/dependencies.md). Plain pip is the fallback when uv cannot run.
# Bytecode: uv writes no .pyc at install; Python writes each module's .pyc into the venv the first time
# it is imported. Compiling every installed module up front (uv --compile-bytecode) cost ~30 CPU s of
# `make run`, for ~11,600 modules of which spendlab imports ~2,800. Where the environment sets
# PYTHONDONTWRITEBYTECODE, no .pyc would ever be written and every command would recompile mlflow,
# pandas, ... from source (~35 s of a loaded CDNOW replay), so make's own commands unset it: .pyc files
# go only into this project's .venv and its (git-ignored) __pycache__ folders.
unexport PYTHONDONTWRITEBYTECODE
INSTALL = $(BIN)/python -m pip install --quiet uv && $(BIN)/uv pip install --quiet --python $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(INSTALL) -e . || $(BIN)/python -m pip install --quiet -e .
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(INSTALL) -e ".[test,spark,docs]" || $(BIN)/python -m pip install --quiet -e ".[test,spark,docs]"
	touch $(STAMP) $@

install: $(STAMP)

install-test: $(TSTAMP)

run: $(STAMP)
	$(BIN)/spendlab pipeline --config configs/pipeline.yaml

test: $(TSTAMP)
	$(BIN)/ruff check src tests benchmarks
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site
	$(BIN)/python -m tests.setup_browser
	$(BIN)/python -m pytest -n auto --dist loadfile

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --default-artifact-root ./mlruns --host 127.0.0.1 --port 5000

# The documentation site (topic pages and the API reference) at http://127.0.0.1:8000, rebuilt on save.
docs: $(TSTAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

bench: $(TSTAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf outputs mlruns .pytest_cache configs/tuned build/site
