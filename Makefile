# Payment-delay prediction service. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
DEMO_DIR := data/processed/demo

.DEFAULT_GOAL := help
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: weekly browser help venv test test-fast demo lock sample bench clean serve ui bento lint

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv with the locked versions (requirements.lock)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync -q requirements.lock --python $(BIN)/python
	$(BIN)/uv pip install -q --no-deps -e . --python $(BIN)/python
	@touch $@

test: venv browser ## Run the whole test suite (what CI runs)
	MPLBACKEND=Agg $(BIN)/python -m pytest -q

# The worklist page is tested in a real browser: Debian's Chromium and its driver (a browser
# downloaded by a test tool cannot be fetched on these machines).
browser: ## Install Debian's chromium and chromium-driver for the page's browser test
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver; }

test-fast: venv ## Tests without the slow end-to-end ones
	MPLBACKEND=Agg $(BIN)/python -m pytest -q -m "not slow"

demo: venv ## Simulate a ledger, build features, train, register, serve and re-rank a sample worklist
	$(BIN)/paydelay demo --workdir $(DEMO_DIR)

LEDGER ?= data/interim/ledger
weekly: venv ## Score the open items as of today and run the monitor (exit 1 on an alarm)
	$(BIN)/paydelay score --ledger $(LEDGER)
	$(BIN)/paydelay monitor --ledger $(LEDGER)

bento: venv requirements-serving.txt ## Build a Bento of @champion: model, customer store, runtime requirements
	$(BIN)/paydelay bento

requirements-serving.txt: requirements.lock serving/runtime_requirements.py
	$(PYTHON) serving/runtime_requirements.py

lint: venv ## Check the import layering (import-linter contracts in pyproject.toml)
	$(BIN)/lint-imports

serve: venv ## Serve the @champion model on http://127.0.0.1:3000
	$(BIN)/paydelay serve

ui: venv ## Open the MLflow UI on the embedded SQLite store
	$(BIN)/mlflow ui --backend-store-uri sqlite:///models/mlflow.db --port 5000

sample: venv ## Regenerate the committed sample ledger in data/sample/
	$(BIN)/paydelay sample

bench: venv ## Run the speed, scale and model-target benchmarks (long: minutes)
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_sap.py
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_http.py
	$(BIN)/python benchmarks/model_targets.py

lock: ## Re-resolve requirements.lock from pyproject.toml (needs network)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(BIN)/python serving/runtime_requirements.py

clean: ## Remove the environment, generated data and local model stores
	rm -rf $(VENV) data/raw/* data/interim/* data/processed/* models/mlflow.db models/mlartifacts
