PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo up test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

.venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/mediasift demo

up: $(STAMP)
	$(BIN)/mediasift up

lint: $(STAMP)
	$(BIN)/ruff check mediasift resources assets dagster_project tests bench

test: lint
	$(BIN)/pytest -q -ra

bench: $(STAMP)
	$(BIN)/python bench/receiver.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .mediasift .pytest_cache .ruff_cache
