# Conveyor: `make demo` and `make test` work on a fresh clone; nothing else is needed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# `make demo PORT=9000`: the demo's server on 9000, its environments on 9001-9003
PORT ?= 8000

.PHONY: demo test lint bench clean

# the flags SDK (sdk/python, package conveyor-flags) first: the server evaluates flags with it
$(STAMP): pyproject.toml sdk/python/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e 'sdk/python[openfeature]' -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/conveyor demo --port $(PORT)

# compiled first: the suite starts a few hundred `conveyor` processes, and where bytecode is not
# written (PYTHONDONTWRITEBYTECODE) each would compile the whole package again
test: $(STAMP)
	$(PY) -m compileall -q src sdk/python/src >/dev/null
	$(PY) -m pytest -q -p no:cacheprovider -n 4 --dist load --maxschedchunk 1
	$(PY) -m pytest -q -p no:cacheprovider sdk/python/tests

# tools/import_cycles.py: no import cycles in src/conveyor but plugin registration
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples sdk tools
	$(VENV)/bin/ruff format --check src tests bench examples sdk tools
	$(VENV)/bin/mypy src
	$(VENV)/bin/mypy --strict sdk/python/src tools
	$(PY) tools/import_cycles.py

bench: $(STAMP)
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) .conveyor demo-workspace build *.egg-info
