# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch: on machines without a GPU an unpinned torch pulls several GB of CUDA
# packages. It comes from pip's configured indexes/find-links, else from PyTorch's CPU index.
# The GPU image (Dockerfile.gpu) installs the CUDA build instead.
TORCH_CPU ?= torch==2.13.0+cpu
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: venv demo test lint schemas clean

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_CPU)" || $(BIN)/pip install --quiet --index-url $(TORCH_CPU_INDEX) "$(TORCH_CPU)"
	$(BIN)/pip install --quiet -e ".[airflow,dev]"
	touch $@

demo: venv
	$(BIN)/python -m demo

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy contract common tabular_model validator preprocess trainer evaluator deployer demo dags bench tools
	PYTHONPATH=dags $(BIN)/lint-imports --no-cache

schemas: venv
	$(BIN)/python -m tools.publish

clean:
	rm -rf $(VENV) .demo
