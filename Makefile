# The list of commands. `make run` and `make test` are all a new user needs: each creates the
# virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000

.PHONY: run test test-fast lint bench bench-smoke clean

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	@touch $(STAMP)

run: $(STAMP)  ## the whole system on 127.0.0.1:$(PORT), SQLite under ./var, demo participants
	$(BIN)/orchestrator run --port $(PORT)

test: $(STAMP)  ## the whole suite; PostgreSQL tests run when it is reachable (required in CI)
	$(BIN)/pytest -q -p no:cacheprovider

test-fast: $(STAMP)  ## unit tests only
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

lint: $(STAMP)
	$(BIN)/ruff check domain application infrastructure api console demo tests bench
	$(BIN)/mypy domain application infrastructure api console demo

bench: $(STAMP)  ## the benchmark: see README, Performance
	$(BIN)/pip install --quiet -e '.[bench]' && $(BIN)/python -m bench

bench-smoke: $(STAMP)  ## a few seconds of the benchmark, so it cannot rot
	$(BIN)/pip install --quiet -e '.[bench]' && $(BIN)/python -m bench --smoke

clean:
	rm -rf $(VENV) var build *.egg-info
