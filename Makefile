# Two commands do all set-up on a fresh machine with Python 3.10+:
#   make demo   installs into .venv and runs the main job on the embedded defaults: GRPO on the
#               tiny warm-started Moshi (built and cached first), all four axes, CPU
#   make test   installs into .venv and runs lint and the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export NO_TORCH_COMPILE ?= 1

.PHONY: install demo test lint format bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m agents.cli.train --out runs/demo

test: install lint
	$(PY) -m pytest --durations=10

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: install
	$(PY) benchmarks/env_throughput.py
	$(PY) benchmarks/closed_loop.py
	$(PY) benchmarks/rollout.py
	$(PY) benchmarks/grpo_step.py
	$(PY) benchmarks/mining.py
	$(PY) benchmarks/gpu.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
