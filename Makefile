# SafePassage developer commands. `make run` and `make test` do all set-up on a
# fresh machine: a virtualenv with the project, and the Kafka broker's jars
# from Maven Central (resolved on first use into ~/.m2).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: setup run test test-unit test-integration lint format stop clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is needed (python3.11 or python3 on the PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)  ## virtualenv with the project and its test tools

run: setup  ## start Kafka, provision every catalog topic
	$(BIN)/safepassage run

stop: setup  ## stop the local broker
	$(BIN)/safepassage kafka stop

lint: setup  ## ruff (lint + format check) and mypy --strict on source
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint  ## lint, then every test tier against a real broker the suite starts
	$(BIN)/pytest

test-unit: setup  ## pure-logic tests only: no process is started
	$(BIN)/pytest tests/unit

test-integration: setup
	$(BIN)/pytest tests/integration

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:  ## remove the virtualenv and all local broker state (data included)
	-$(BIN)/safepassage kafka stop
	-$(BIN)/safepassage kafka stop --cluster
	rm -rf $(VENV) .state .mypy_cache .ruff_cache .pytest_cache .hypothesis
