# Development entry points. A fresh clone needs only python3 (>= 3.11), Node.js (>= 18, with npm) and make;
# every target below installs what it needs (into .venv, node_modules and typings, all git-ignored).
#
#   make test       everything CI runs: pytest (CPython, MicroPython via WebAssembly, mpy-cross, pyright)
#   make bench      every bench/bench_*.py, each printing its figures
#   make reliability  the full ride-oracle sweeps (bench/bench_reliability.py --full): fails on any double charge
#   make demo       tools/demo.py: the product end to end on the virtual board (deploy, provision, a bus day, pull,
#                   report, export);  make demo-core  tools/demo_core.py: the firmware core alone
#   make typecheck  pyright on firmware/ against the ESP32 stubs
#   make mpy        firmware/ compiled to build/mpy/ (what goes on the board)
#   make clean      build output and caches;  make distclean  also .venv, node_modules, typings

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
NPM    ?= npm
NODE   ?= node

VENV_STAMP    := $(VENV)/.installed
NODE_STAMP    := node_modules/.installed
TYPINGS_STAMP := typings/.installed
# The board's stubs, at the versions requirements.txt pins (one place to change them).
STUB_PINS = $(shell grep -E '^micropython-(esp32|stdlib)-stubs==' requirements.txt | cut -d' ' -f1)

# bench and demo scripts import tunion.*, sim.* and tools.* as the tests do.
RUNPATH := PYTHONPATH=$(CURDIR):$(CURDIR)/firmware:$(CURDIR)/tests

export PIP_DISABLE_PIP_VERSION_CHECK := 1

PYTEST_ARGS ?=

.PHONY: all venv node typings test typecheck bench reliability demo demo-core mpy clean distclean check-python check-node

all: test

check-python:
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found: install Python >= 3.11" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "make: $(PYTHON) is $$($(PYTHON) -V 2>&1); Python >= 3.11 is needed (make PYTHON=python3.12 ...)" >&2; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || \
	  { echo "make: $(PYTHON) lacks venv/ensurepip (Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1; }

check-node:
	@command -v $(NODE) >/dev/null && command -v $(NPM) >/dev/null || \
	  { echo "make: node and npm are needed (Node.js >= 18; Debian/Ubuntu: apt-get install nodejs npm)" >&2; exit 1; }
	@$(NODE) -e 'process.exit(parseInt(process.versions.node) >= 18 ? 0 : 1)' || \
	  { echo "make: Node.js >= 18 is needed, found $$($(NODE) --version)" >&2; exit 1; }

# ---- installs (each redone only when its pins change) -------------------------------------------------------

venv: $(VENV_STAMP)
$(VENV_STAMP): requirements.txt pyproject.toml | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

node: $(NODE_STAMP)
$(NODE_STAMP): package.json package-lock.json | check-node
	$(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

typings: $(TYPINGS_STAMP)
$(TYPINGS_STAMP): requirements.txt $(VENV_STAMP)
	rm -rf typings
	$(PY) -m pip install --quiet --no-deps --target typings $(STUB_PINS)
	@touch $@

# ---- work ---------------------------------------------------------------------------------------------------

test: $(VENV_STAMP) $(NODE_STAMP) $(TYPINGS_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

typecheck: $(NODE_STAMP) $(TYPINGS_STAMP)
	node_modules/.bin/pyright --pythonpath "$$(command -v true)" --project pyproject.toml

bench: $(VENV_STAMP) $(NODE_STAMP)
	@set -e; found=0; for f in bench/bench_*.py; do \
	  [ -e "$$f" ] || continue; found=1; \
	  echo "== $$f"; $(RUNPATH) $(PY) "$$f"; echo; \
	done; [ $$found = 1 ] || echo "no bench/bench_*.py yet"

reliability: $(VENV_STAMP)
	$(RUNPATH) $(PY) bench/bench_reliability.py --full --show 3

demo: $(VENV_STAMP) $(NODE_STAMP)
	$(RUNPATH) $(PY) -m tools.demo

demo-core: $(VENV_STAMP)
	$(RUNPATH) $(PY) -m tools.demo_core

mpy: $(VENV_STAMP)
	$(PY) -m tools.mpybuild --src firmware --out build/mpy

clean:
	rm -rf build out .pytest_cache .hypothesis *.egg-info
	find . -path ./.venv -prune -o -path ./node_modules -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules typings
