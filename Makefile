# Everything a fresh machine needs, from Python 3.11 alone: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stamp-install
# The CPU build that lies on these machines; a plain `torch` would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0

.PHONY: demo test test-fast test-slow lint format venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]' $(TORCH)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/caviar run sweeps/examples/demo.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q --durations=15

# The inner loop: no slow tests and none that start `caviar` in a subprocess (marked `cli`).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not cli"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
