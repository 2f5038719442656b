# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Both create .venv on first use; nothing here downloads a CUDA build (torch is pinned to the CPU wheel).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: venv demo test test-deep bench clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps spikingjelly==2.0.0
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import spikingjelly.activation_based.neuron, spikingjelly.activation_based.nir_exchange, paibox, snntorch, snncheck; print('environment ready')"
	$(BIN)/python -c "from snncheck.backends.reference import warm_up; warm_up()"    # numba's loops compiled once, cached on disk
	touch $(STAMP)

demo: venv
	$(BIN)/snncheck demo

test: venv
	$(BIN)/python -m pytest -q

test-deep: venv
	$(BIN)/python -m pytest -q --runslow --hypothesis-profile=deep

bench: venv
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) reports/*.html reports/*.json
