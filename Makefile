# The two commands: `make run` and `make test`. Both install everything they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench install browser lint clean

run: install
	$(BIN)/afftok up

test: install browser
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench.run

lint: install
	$(BIN)/lint-imports

install: $(VENV)/.synced

# The dashboard's browser test drives Debian's chromium package (it never downloads a
# browser); sudo only when not root.
SUDO = $(shell test "$$(id -u)" -eq 0 || command -v sudo)
browser:
	test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

# uv syncs the locked dependencies ~9x faster than pip; --inexact keeps uv itself.
$(VENV)/.synced: pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "AffTok needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"
	$(BIN)/python -m uv sync --frozen --inexact
	touch $@

clean:
	rm -rf $(VENV) .afftok
