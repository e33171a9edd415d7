# router-ml: the commands a newcomer needs. Everything runs inside ./.venv, created on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data

.PHONY: run test lint model eval bench bench-gateway serve notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.runtime

## run: set up the runtime and route the example requests with the shipped model
run: $(VENV)/.runtime
	$(BIN)/router-ml route --batch examples/requests.jsonl --table
	$(BIN)/router-ml route --batch examples/requests.jsonl --policy examples/policy-rules.yaml --table

## test: set up the dev extras, lint, and run the test suite
test: $(VENV)/.dev lint
	$(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## model: retrain the shipped default model from $(DATA)
model: $(VENV)/.dev
	$(BIN)/router-ml train --data $(DATA)/traffic --catalog $(DATA)/models.json --out models/default

## eval: routing quality on the held-out test split, ours vs baselines and peers, with the speed bench
eval: $(VENV)/.dev
	$(BIN)/router-ml eval --split test --bench --data $(DATA)/traffic --catalog $(DATA)/models.json --report reports/eval

## bench: route() latency and throughput against the baselines, and the runtime's own budget
bench: $(VENV)/.dev
	$(BIN)/router-ml bench --requests $(DATA)/requests/*.jsonl.gz --report reports/bench
	$(BIN)/python benchmarks/runtime_budget.py --data $(DATA)

## bench-gateway: the proxy's added latency under load (2,000 requests, 32 clients, loopback)
bench-gateway: $(VENV)/.dev
	$(BIN)/python benchmarks/gateway_load.py --requests 2000 --concurrency 32

## notebooks: re-run the notebooks on all data and save their outputs
notebooks: $(VENV)/.dev
	$(BIN)/python notebooks/run_notebooks.py --in-place

serve: $(VENV)/.dev
	$(BIN)/router-ml serve --config examples/gateway.yaml

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache
