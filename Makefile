# Two commands (see README):
#   make start   set everything up, generate the assignments, open the course in JupyterLab
#   make test    set everything up and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Keep Jupyter's config and runtime files inside the work tree, so runs never depend on $HOME.
export JUPYTER_CONFIG_DIR  := $(CURDIR)/.jupyter/config
export JUPYTER_DATA_DIR    := $(CURDIR)/.jupyter/data
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.jupyter/runtime
export IPYTHONDIR          := $(CURDIR)/.ipython
export MPLBACKEND          ?= Agg
LAB_FLAGS ?= --ip=127.0.0.1

.PHONY: setup setup-system start lab generate test lint bench clean

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# Debian packages the tests drive for real: headless Chromium (bertviz drawing) and a PostgreSQL
# server (the gradebook of a big course; the tests start their own throw-away instance).
setup-system:
	@missing=; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; fi

generate: setup
	$(BIN)/llmcourse generate

start: generate lab

lab: setup
	$(BIN)/jupyter lab $(LAB_FLAGS) --notebook-dir=$(CURDIR)

test: setup setup-system lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# ruff, configured in pyproject.toml: lint rules and the one code format.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .jupyter .ipython course_work .pytest_cache
