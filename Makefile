# Two commands (see README):
#   make start   set everything up, copy the course into work/ (never over a student's edits), open JupyterLab there
#   make test    set everything up and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Keep Jupyter's config and runtime files inside the work tree, so runs never depend on $HOME.
export JUPYTER_CONFIG_DIR  := $(CURDIR)/.jupyter/config
export JUPYTER_DATA_DIR    := $(CURDIR)/.jupyter/data
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.jupyter/runtime
export IPYTHONDIR          := $(CURDIR)/.ipython
# JupyterLab's terminals run a plain `bash`, not terminado's login shell (`bash -l`, chosen when the server's
# stdout is no tty): a login shell reads /etc/profile, which resets PATH and hides the venv's `llmcourse`.
LAB_FLAGS ?= --ip=127.0.0.1 --ServerApp.terminado_settings='{"shell_command":["/bin/bash"]}'
# The server's environment is the kernels' and the terminals': the venv first on PATH (so `llmcourse
# validate` works in JupyterLab's terminal), and no MPLBACKEND, so ipykernel picks its inline backend and
# plots show in every notebook whatever the calling shell exported.
LAB_ENV := env -u MPLBACKEND PATH="$(CURDIR)/$(BIN):$$PATH"

.PHONY: setup setup-system start workspace lab generate site test lint bench clean

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# Debian packages the tests drive for real: headless Chromium (bertviz drawing, the course site, the
# JupyterLab walk), a PostgreSQL server (the gradebook of a big course; the tests start their own
# throw-away instance) and bubblewrap (the grading kernel's sandbox).
setup-system:
	@missing=; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	  command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; fi

generate: setup
	$(BIN)/llmcourse generate

# Students work in work/ (ignored by git): their copies of the lectures and assignments. A copy is
# replaced only while it is exactly as copied; once edited it is the student's, whatever changes upstream.
start: workspace
	$(LAB_ENV) $(BIN)/jupyter lab $(LAB_FLAGS) --notebook-dir=$(CURDIR)/work

workspace: setup
	$(BIN)/python -m llmcourse.workspace --repo $(CURDIR)

# A static course site that reads without running: every lecture executed, figures and bertviz views
# included, no network needed to view it.
site: setup
	$(BIN)/python -m llmcourse.toolbox.site _site

# The whole repository (instructors, maintainers: solutions/, formgrader).
lab: setup
	$(LAB_ENV) $(BIN)/jupyter lab $(LAB_FLAGS) --notebook-dir=$(CURDIR)

test: setup setup-system lint
	MPLBACKEND=Agg $(BIN)/python -m pytest -q -n auto --durations=15 $(PYTEST_ARGS)

# ruff, configured in pyproject.toml: lint rules and the one code format.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .jupyter .ipython course_work .pytest_cache  # never work/: it holds students' answers
