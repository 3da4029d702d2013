# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch: on machines without a GPU an unpinned torch pulls several GB of CUDA
# packages. It comes from pip's configured indexes/find-links, else from PyTorch's CPU index.
# The GPU image (Dockerfile.gpu) installs the CUDA build instead.
TORCH_CPU ?= torch==2.13.0+cpu
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: venv demo test lint schemas clean image stack

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_CPU)" || $(BIN)/pip install --quiet --index-url $(TORCH_CPU_INDEX) "$(TORCH_CPU)"
	$(BIN)/pip install --quiet -e ".[airflow,dev,stack]"
	touch $@

demo: venv
	$(BIN)/python -m demo

# The pipeline under real services on this machine (PostgreSQL, S3, MLflow, Airflow); Ctrl-C
# stops it. Ports: STACK_AIRFLOW_PORT, STACK_MLFLOW_PORT, STACK_S3_PORT, STACK_PG_PORT.
stack: venv
	$(BIN)/python -m tools.stack $(STACK_ARGS)

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy contract common tabular_model validator preprocess trainer evaluator deployer scorer demo dags bench tools
	PYTHONPATH=dags $(BIN)/lint-imports --no-cache
	$(BIN)/hadolint Dockerfile.gpu

# The CPU image tabular-gpu-pipeline:cpu from Dockerfile.gpu, with buildah into the local container
# storage (no Docker engine): tools/image.py says how. Python's standard library only: no venv.
image:
	$(PYTHON) -m tools.image --torch-spec "$(TORCH_CPU)" --torch-index-url "$(TORCH_CPU_INDEX)"

schemas: venv
	$(BIN)/python -m tools.publish

clean:
	rm -rf $(VENV) .demo
