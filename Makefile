# The two commands of the README. Both work on a fresh Debian 12 machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PATRON := $(BIN)/patron
LINTED := src tests $(wildcard bench)

.PHONY: run test test-fast lint bench clean system-packages

# A virtualenv with pip; Debian ships venv's ensurepip separately, so install it when missing.
$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); \
	  echo "installing python3-venv"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	  $(PYTHON) -m venv $(VENV); }
	@$(BIN)/python -m pip install -q --upgrade pip

# Third-party front-end code (Swagger UI) comes from the npm registry, pinned with integrity hashes in
# its package-lock.json (npm ci checks them), into a git-ignored folder the package serves.
VENDOR := src/patron/static/vendor
$(VENDOR)/node_modules/.installed: $(VENDOR)/package.json $(VENDOR)/package-lock.json
	@command -v npm >/dev/null || { echo "installing nodejs npm"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --prefix $(VENDOR) --no-audit --no-fund --silent
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENDOR)/node_modules/.installed | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENDOR)/node_modules/.installed | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	@touch $@

run: $(VENV)/.installed
	$(PATRON) migrate
	$(PATRON) demo
	$(PATRON) serve

lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

# Debian packages the tests use: PostgreSQL (every in-process test runs on SQLite and on a throwaway
# PostgreSQL cluster), Redis (shared rate limits), Chromium for the browser tests (Playwright drives Debian's build;
# it never downloads a browser of its own), wrk (the load of bench/push.py and bench/postgres.py, which
# a test runs briefly).
SYSTEM_PACKAGES := chromium postgresql redis-server wrk
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The suite's files run in parallel, each file's tests on one process (its module fixtures shared):
# three processes, more than the two cores, as most tests wait on servers, workers and the browser.
# The slowest tests are listed at the end (the suite's time is kept under 25 minutes).
# The source is compiled to bytecode first: the suite starts hundreds of patron processes, each of
# which would otherwise compile every module again where PYTHONDONTWRITEBYTECODE is set.
TEST_PROCESSES ?= 3
PARALLEL := -n $(TEST_PROCESSES) --dist loadfile --durations=15
BYTECODE := $(BIN)/python -m compileall -q src bench

test: lint system-packages
	$(BYTECODE)
	$(BIN)/pytest $(PARALLEL)

# For contributors: lint, types, and the suite on SQLite alone without the browser tests.
test-fast: lint system-packages
	$(BYTECODE)
	$(BIN)/pytest -q $(PARALLEL) -k "not postgresql" -m "not browser"

# Benchmarks (loopback only, about fifteen minutes in all); each rewrites its table in
# docs/performance.md. wrk from Debian, Stoplight Prism from npm (into bench/.node) for the comparison;
# bench/postgres.py starts a throwaway PostgreSQL cluster of its own.
PRISM := bench/.node/node_modules/.bin/prism
$(PRISM):
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	npm install --prefix bench/.node --no-audit --no-fund --silent @stoplight/prism-cli@5

bench: $(VENV)/.installed-test system-packages $(PRISM)
	$(BIN)/python bench/push.py
	$(BIN)/python bench/postgres.py
	$(BIN)/python bench/apply.py --customers repeat
	$(BIN)/python bench/apply.py --customers distinct
	$(BIN)/python bench/visibility.py
	$(BIN)/python bench/reads.py
	$(BIN)/python bench/backfill.py
	$(BIN)/python bench/import.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/segments.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/pytest bench/micro --benchmark-only -o testpaths=bench --benchmark-columns=min,median,max,rounds

clean:
	rm -rf $(VENV) $(VENDOR)/node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
