# SafePassage developer commands. `make run` and `make test` do all set-up on a
# fresh machine: a virtualenv with the project, and the Kafka broker's jars
# from Maven Central (resolved on first use into ~/.m2).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements.lock
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha256sum | cut -c1-12)
UV_VERSION := 0.13.9
UV     := $(VENV)/.uv-$(UV_VERSION)/bin/uv

.PHONY: setup lock run demo test test-long test-unit test-integration test-platform lint format stop clean browser \
	bench bench-deadlines bench-rocksdb bench-sealing

# Every package (pip and the build backend included) comes from $(LOCK) at its
# pinned version, checked against the lock's hashes; then the project itself,
# editable, with no dependencies and no build isolation (hatchling is locked).
# pip stays quiet (a line per package would bury the rest); each step says
# first what it does and about how long it takes.
$(STAMP): pyproject.toml $(LOCK)
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is needed (python3.11 or python3 on the PATH)"; exit 1; }
	@echo "… virtualenv $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)
	@echo "… installing $$(grep -c '^[A-Za-z0-9]' $(LOCK)) pinned packages from $(LOCK), hashes checked" \
	  "(first time: about 1-3 min, mostly downloads; again only when the lock or pyproject.toml changes)"
	@start=$$(date +%s); $(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK) \
	  && echo "✓ packages installed ($$(( $$(date +%s) - start )) s)"
	@echo "… installing SafePassage itself (editable, a few seconds)"
	@$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)
	@echo "✓ $(VENV) ready"

setup: $(STAMP)  ## virtualenv with the project and its test tools, from the lock

# The console's end-to-end test drives Debian's Chromium through Playwright's
# own driver (PyPI `playwright`, locked); `playwright install` would download a
# browser build from a CDN, so the browser comes from the distribution instead.
CHROMIUM := /usr/bin/chromium
browser:  ## Debian's Chromium for the console's browser test (apt-get; skipped if present)
	@test -x $(CHROMIUM) || { \
	  command -v apt-get >/dev/null || { echo "install Chromium at $(CHROMIUM) (Debian: apt-get install chromium)"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }
	@$(CHROMIUM) --version 2>/dev/null  # its wrapper script warns on stderr about a shell test of its own

# The lock holds the [test] extra, the build requirements (hatchling, and the
# editables package its editable build asks for) and pip. It keeps every pin
# that still fits pyproject's ranges; UPGRADE=1 moves each to the newest allowed.
lock: $(UV)  ## refresh the lock (requirements.lock) from pyproject's ranges
	rm -f $(VENV)/lock.new; test ! -f $(LOCK) || cp $(LOCK) $(VENV)/lock.new
	build=$$($(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")') && \
	printf '%s\n' "$$build" 'editables~=0.3' pip \
	| $(UV) pip compile --quiet pyproject.toml - --extra test --universal --python-version 3.11 \
	    --python $(PYTHON) --generate-hashes $(if $(UPGRADE),--upgrade) \
	    --custom-compile-command 'make lock' -o $(VENV)/lock.new
	cmp -s $(VENV)/lock.new $(LOCK) || cp $(VENV)/lock.new $(LOCK)
	rm -f $(VENV)/lock.new

$(UV):
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is needed (python3.11 or python3 on the PATH)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --target $(VENV)/.uv-$(UV_VERSION) uv==$(UV_VERSION)

run: setup  ## the whole platform, supervised: broker, topics, ACLs, demo keys, worker, intake, webhooks, relays (docs/running.md)
	@$(BIN)/safepassage run || [ $$? -eq 3 ]  # 3: already running, said in one line; nothing to add

demo: setup  ## make run with the live demo: simulated providers, a stream of fictional survivors, escalations live (docs/demo.md)
	@$(BIN)/safepassage run --demo || [ $$? -eq 3 ]

stop: setup  ## stop a local broker left running (`make run` stops the one it started on Ctrl-C)
	$(BIN)/safepassage kafka stop

lint: setup  ## ruff (lint + format check) and mypy --strict on source
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# The pure core of processors/ (all but the Faust/RocksDB binding) must stay
# fully covered; the other packages' figures are reported.
PURE_CORE := --include='processors/*' --omit='processors/router/*'
PACKAGES  := schemas streams processors connectors infra

# Two jobs side by side, as the machine has two cores and the broker tiers
# mostly wait on the broker. In the background: lint, the schema registry's
# Maven build (needed by one broker test), the unit tier (no process
# started), then the platform tier (whole `safepassage run` platforms with
# brokers of their own: the run itself, the docs' examples, the demo), logged
# to .state/test-background.log and printed at the end. In the foreground:
# the tiers with the suite's broker, in one process, in order, as their waits
# expect. The unit and broker tiers have a coverage file each, combined (the
# platform tier's processes are not traced). `make lint` alone gives lint's
# verdict at once.
test: setup browser  ## lint, every test tier against a real broker the suite starts, coverage gate
	$(BIN)/coverage erase; rm -f .coverage.unit .coverage.broker
	@mkdir -p .state
	@echo "lint, the unit and the platform tiers in the background (log: .state/test-background.log); broker tiers here:"
	@( $(MAKE) --no-print-directory lint; lint=$$?; \
	   $(BIN)/safepassage registry build; \
	   COVERAGE_FILE=.coverage.unit $(BIN)/pytest tests/unit --cov --cov-report=; unit=$$?; \
	   $(BIN)/pytest tests/platform; platform=$$?; \
	   test $$lint -eq 0 && test $$unit -eq 0 && test $$platform -eq 0 \
	 ) > .state/test-background.log 2>&1 & background=$$!; \
	COVERAGE_FILE=.coverage.broker $(BIN)/pytest tests/contract tests/integration \
	    --cov --cov-report=; broker=$$?; \
	wait $$background; background=$$?; \
	echo "---- lint, unit and platform tiers (.state/test-background.log) ----"; \
	cat .state/test-background.log; \
	test $$broker -eq 0 && test $$background -eq 0
	$(BIN)/coverage combine --quiet .coverage.unit .coverage.broker
	@echo "line coverage by package (in-process; workers started as subprocesses are not traced):"
	@for p in $(PACKAGES); do printf '  %-11s %s %%\n' $$p "$$($(BIN)/coverage report --include="$$p/*" --format=total)"; done
	@echo "pure core of processors/ (the floor is 100 %):"
	$(BIN)/coverage report $(PURE_CORE) --skip-covered --show-missing --fail-under=100

test-long: setup  ## what make test leaves out: 10,000 offers through a kill -9, the secured 3-node cluster
	$(BIN)/pytest -m long

test-unit: setup  ## pure-logic tests only: no process is started
	$(BIN)/pytest tests/unit

test-integration: setup
	$(BIN)/pytest tests/integration

test-platform: setup browser  ## whole platforms (safepassage run): the run, the docs' examples, the demo
	$(BIN)/pytest tests/platform

# Benchmarks live in tests/bench/, outside the installed packages; pytest does not
# collect them (bench_*.py). Figures depend on the machine: compare the ratios.
bench: bench-deadlines bench-rocksdb bench-sealing  ## every benchmark (~2 min)

bench-deadlines: setup  ## tick cost with 10,000 and 1,000,000 open deadlines, in memory (~30 s)
	$(BIN)/python -m tests.bench.bench_deadlines $(BENCH_ARGS)

bench-rocksdb: setup  ## the same on RocksDB, the worker's store (~70 s)
	$(BIN)/python -m tests.bench.bench_rocksdb $(BENCH_ARGS)

bench-sealing: setup  ## what sealing adds per event, as ratios to the unsealed path (~10 s)
	$(BIN)/python -m tests.bench.bench_sealing $(BENCH_ARGS)

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:  ## remove the virtualenv and all local broker state (data included)
	-$(BIN)/safepassage kafka stop
	-$(BIN)/safepassage kafka stop --cluster
	rm -rf $(VENV) .state .mypy_cache .ruff_cache .pytest_cache .hypothesis .coverage
