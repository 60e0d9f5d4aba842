# Two commands for a fresh machine:  make run  (dashboard on the demo data)  and  make test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
PORT ?= 8501

.PHONY: run test install install-test chromium demo lint typecheck unit bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Debian's chromium for the browser tests (Playwright cannot download browsers here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

demo: $(VENV)/.installed
	$(VENV)/bin/ttslab demo --if-missing

run: demo
	$(VENV)/bin/ttslab serve --port $(PORT)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check core dashboard tests bench
	$(VENV)/bin/ruff format --check core dashboard tests bench

typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy

# two phases: the tests that can share the machine on two workers (a file per worker at a
# time), then the serial ones (servers, browsers, timing, process pools) alone
unit: $(VENV)/.installed-test
	$(PY) -m pytest -n 2 --dist loadfile -m "not serial" --durations=10
	$(PY) -m pytest -m serial --durations=15

test: $(VENV)/.installed-test chromium lint typecheck unit

bench: $(VENV)/.installed-test
	$(PY) bench/bench_import.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
