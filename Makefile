# router-ml: the commands a newcomer needs. Everything runs inside ./.venv, created on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data

.PHONY: help run test lint typecheck model eval bench bench-gateway serve notebooks clean
.DEFAULT_GOAL := help

## help: list the targets with what each does
help:
	@awk -F': ' '/^## [a-z-]+: /{sub(/^## /, ""); printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

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

## test: set up the dev extras, lint, type-check router_ml, and run the test suite
test: $(VENV)/.dev lint typecheck
	$(BIN)/python -m pytest

## lint: ruff check and ruff format --check
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## typecheck: mypy on the runtime package router_ml (settings in pyproject.toml)
typecheck: $(VENV)/.dev
	$(BIN)/mypy

$(VENV)/.distill: pyproject.toml | $(VENV)/.dev
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,distill]'
	touch $@

## model: retrain the shipped default model from $(DATA) (distils the text embedding once, cached in build/)
model: $(VENV)/.dev $(VENV)/.distill
	$(BIN)/router-ml train --data $(DATA)/traffic --catalog $(DATA)/models.json --unlabeled $(DATA)/requests --suite examples/sense.jsonl examples/sense-check.jsonl --out models/default

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

## serve: run the gateway with examples/gateway.yaml
serve: $(VENV)/.dev
	$(BIN)/router-ml serve --config examples/gateway.yaml

## clean: remove the venv, reports and caches
clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache
