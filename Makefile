# The two README commands, `make demo` and `make test`, set up everything they need.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck docs pytest graphviz-dot bench bench-quick test-nightly test-numpy-only fuzz clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch is pinned to the CPU build that lies on disk (see pyproject's extras).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps torchvision==0.28.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lazyshape demo

lint: $(STAMP)
	$(VENV)/bin/ruff check lazyshape backends tests benchmarks

# mypy strict over the core, the harness and the backends (pyproject's [tool.mypy])
typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Graphviz's `dot` (a system package) renders ls.plot's SVG and PNG in the tests.
graphviz-dot:
	@command -v dot >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq graphviz) || { echo "make: the tests need Graphviz's dot:" \
		"install the system package graphviz" >&2; exit 1; }

pytest: $(STAMP) graphviz-dot
	LAZYSHAPE_REQUIRE_ALL=1 HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(PY) -m pytest --durations=15

# The documentation site (mkdocs-material, API reference from the docstrings) into
# site/; --strict: a broken link or a docstring that does not render fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

test: lint typecheck docs pytest

test-nightly: $(STAMP)
	HYPOTHESIS_PROFILE=nightly $(PY) -m pytest

# Random models of every layer family on every backend, at the nightly size
# (2,250 models and inputs, 750 DAGs with merges, the bad-input properties).
fuzz: $(STAMP)
	LAZYSHAPE_REQUIRE_ALL=1 HYPOTHESIS_PROFILE=nightly $(PY) -m pytest tests/test_fuzz.py tests/test_bad_input.py

# The suite with NumPy alone (no torch, jax or onnx): framework-marked tests skip, the rest must pass.
NUMPY_VENV := .venv-numpy
NUMPY_PY := $(NUMPY_VENV)/bin/python
NUMPY_STAMP := $(NUMPY_VENV)/.installed-numpy

$(NUMPY_PY):
	$(PYTHON) -m venv $(NUMPY_VENV)
	$(NUMPY_PY) -m pip install --quiet --upgrade pip

$(NUMPY_STAMP): pyproject.toml | $(NUMPY_PY)
	$(NUMPY_PY) -m pip install --quiet -e . pytest hypothesis
	touch $(NUMPY_STAMP)

test-numpy-only: $(NUMPY_STAMP)
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(NUMPY_PY) -m pytest

# The peers (flax, Keras) and matplotlib come from the `bench` extra, never the runtime deps.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m benchmarks

bench-quick: $(BENCH_STAMP)
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) build site *.egg-info
