# spendlab: two commands set everything up on a fresh machine with Python 3.11 and make.
#   make run    the main job on the embedded CDNOW dataset
#   make test   the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: run test install install-test ui bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,spark]"
	touch $(STAMP) $@

install: $(STAMP)

install-test: $(TSTAMP)

run: $(STAMP)
	$(BIN)/spendlab pipeline --config configs/pipeline.yaml

test: $(TSTAMP)
	$(BIN)/python -m tests.setup_browser
	$(BIN)/python -m pytest

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --default-artifact-root ./mlruns --host 127.0.0.1 --port 5000

bench: $(TSTAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf outputs mlruns .pytest_cache
