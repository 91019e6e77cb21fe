# The two commands: `make demo` and `make test`. Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DO_NOT_TRACK := 1
export RUNTIME__DLTHUB_TELEMETRY := false
export GX_ANALYTICS_ENABLED := False
export DAGSTER_DISABLE_TELEMETRY := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export NO_MKDOCS_2_WARNING := 1

.PHONY: install demo test lint unit e2e bench clean lock bi docs

# Pinned: pyproject.toml names the direct dependencies, requirements.lock every transitive one.
# The install also compiles ingestion/rowpass.py into the C extension ingestion._rowpass
# (setup.py; Cython pinned in pyproject.toml), with the C types of ingestion/rowpass.pxd, so a
# change to either reinstalls too.
$(STAMP): pyproject.toml requirements.lock setup.py ingestion/rowpass.py ingestion/rowpass.pxd
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP) bi
	$(BIN)/lakepulse demo

# Superset's own virtualenv (bi/.venv, from bi/requirements.lock; its pins conflict with ours).
# `lakepulse bi` builds it on first use too; rebuilt when the lock changes.
bi: $(STAMP)
	$(BIN)/python -c "from lakepulse.operations.bi import ensure_bi_venv; ensure_bi_venv(print)"

# The official Segment Node SDK, for the collector's compatibility test (npm registry, pinned).
NODE_SDK := tests/sdk_node/node_modules/.installed
$(NODE_SDK): tests/sdk_node/package-lock.json
	npm ci --prefix tests/sdk_node --no-audit --no-fund --loglevel=error
	@touch $(NODE_SDK)

# The unmodified browser SDKs and esbuild for the storefront test (tests/e2e/test_browser_sdk.py).
BROWSER_SDK := tests/browser_sdk/node_modules/.installed
$(BROWSER_SDK): tests/browser_sdk/package-lock.json
	npm ci --prefix tests/browser_sdk --no-audit --no-fund --loglevel=error
	@touch $(BROWSER_SDK)

# The development environment: our virtualenv and the SDK bundles the tests drive, so any test
# runs on its own after `make install`, not only inside `make test`.
install: $(STAMP) $(NODE_SDK) $(BROWSER_SDK)

# Debian's Chromium for the Dagster UI test: Playwright drives it, no browser is downloaded.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
	  || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }

test: $(STAMP) $(NODE_SDK) $(BROWSER_SDK) $(CHROMIUM) bi
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mkdocs build --strict
	@# Two workers for most tests; the timing-sensitive ones alone afterwards. The fault
	@# injection runs a sample of its boundaries here; `pytest -m faults` runs the rest.
	@# The slowest tests are listed, so a CI run that grows past its 30 minutes says where.
	$(BIN)/pytest -m "not serial and not faults" -n 2 --dist loadfile --durations=15
	$(BIN)/pytest -m "serial and not faults"

# The docs site (mkdocs.yml, docs/) at http://127.0.0.1:8000, rebuilt on every save.
docs: $(STAMP)
	$(BIN)/mkdocs serve

unit: $(STAMP)
	$(BIN)/pytest -m "not integration and not e2e"

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/lint-imports

# Debian's wrk, the load generator of bench_collector (benchmarks/wrk/*.lua).
WRK := /usr/bin/wrk
$(WRK):
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null \
	  || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }

bench: $(STAMP) $(WRK)
	$(BIN)/python -m benchmarks

# Re-resolve the lock after changing pyproject.toml: `make lock`, then commit requirements.lock.
lock:
	rm -rf /tmp/lakepulse-lock && $(PYTHON) -m venv /tmp/lakepulse-lock
	/tmp/lakepulse-lock/bin/pip install --quiet --upgrade "pip==26.3" && /tmp/lakepulse-lock/bin/pip install --quiet -e ".[dev]"
	/tmp/lakepulse-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) bi/.venv .pytest_cache .ruff_cache dbt_project/target dbt_project/logs site build
	rm -f ingestion/_rowpass.*.so
