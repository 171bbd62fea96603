# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps .venv from the lock file.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench e2e e2e-fixture lock emulator clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/leanloop demo

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks e2e
	$(BIN)/ruff format --check src tests benchmarks e2e

typecheck: $(STAMP)
	$(BIN)/basedpyright

unit: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do \
		echo "== $$b"; extra=""; \
		case $$b in *bench_tokens.py) extra=--allow-missing-data;; esac; \
		$(BIN)/python $$b $$extra || exit 1; \
	done

# Real Claude Code (from the npm registry, cached in .cache/claude-code) against `leanloop emulator`; its costs
# must match `leanloop report` on its own logs. Needs npm and the registry; about half a minute once installed.
e2e: $(STAMP)
	@$(BIN)/python e2e/claude_code.py

# The same, then refresh tests/fixtures/claude_code_e2e/ (the logs `make test` checks without npm); commit it.
e2e-fixture: $(STAMP)
	@$(BIN)/python e2e/claude_code.py --write-fixture

emulator: $(STAMP)
	$(BIN)/leanloop emulator

# Re-resolve the lock (needs the network); commit requirements.lock afterwards.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--universal --no-header --output-file requirements.lock
	$(BIN)/python -m pip uninstall --quiet --yes uv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build src/*.egg-info
