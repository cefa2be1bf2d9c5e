# epeflow: the two commands users need are `make demo` and `make test`.
# Both build the virtual environment from this repository's own files first (pyproject.toml +
# constraints.txt), so a fresh clone needs nothing but Python 3.11+ and pip.

PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# CPU build by default (small, on this machine's wheel cache); set TORCH_SPEC='torch==2.9.1' or a
# CUDA wheel index on a GPU box, e.g. `make venv TORCH_SPEC=torch PIP_EXTRA='--index-url https://download.pytorch.org/whl/cu128'`.
TORCH_SPEC ?= torch==2.13.0
PIP_EXTRA ?=
CORES ?= all
TARGET ?=
PYTEST_ARGS ?=

export PATH := $(BIN):$(PATH)

.PHONY: venv demo test lint dag bench clean-results torch-fidelity

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(PIP_EXTRA) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,slurm,exr]"
	touch $@

venv: $(VENV)/.installed

## Set up and run the whole demo pipeline on the embedded, generated data (no downloads).
demo: venv
	$(BIN)/snakemake --cores $(CORES) --workflow-profile workflow/profiles/default $(TARGET)
	@echo "Demo done: results/demo/model.pt, results/demo/metrics.json, results/demo/report.html"

## Run the test suite (the same command CI runs).
test: venv torch-fidelity
	EPEFLOW_TORCH_FIDELITY_SITE=$(TFID_SITE) $(BIN)/python -m pytest $(PYTEST_ARGS)

## torch-fidelity 0.4.0 beside the venv, without its dependencies (it would pull another torch), for the
## Inception FID/KID parity tests and bench_evaluate; tests find it through EPEFLOW_TORCH_FIDELITY_SITE.
TFID_SITE ?= /tmp/tfid_site
torch-fidelity: venv
	$(BIN)/python -m pip install --quiet --no-deps --target $(TFID_SITE) torch-fidelity==0.4.0

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/snakemake --lint

dag: venv
	$(BIN)/snakemake --dag | dot -Tsvg > dag.svg

bench: venv
	$(BIN)/python -m bench.run_all

clean-results:
	rm -rf results logs benchmarks .snakemake
