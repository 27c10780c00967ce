# The two commands: `make run` and `make test`. Both install everything they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench install lint clean

run: install
	$(BIN)/afftok up

test: install
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench.run

lint: install
	$(BIN)/lint-imports

install: $(VENV)/.synced

# uv syncs the locked dependencies ~9x faster than pip; --inexact keeps uv itself.
$(VENV)/.synced: pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "AffTok needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"
	$(BIN)/python -m uv sync --frozen --inexact
	touch $@

clean:
	rm -rf $(VENV) .afftok
