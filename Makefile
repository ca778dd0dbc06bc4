# The two README commands:
#   make test   set up the offline ComfyUI test host, then run every test (unit, golden, e2e, browser)
#   make demo   set up the host, then run "workflows/SkyReels-V2 Text to Video.json" in the embedded ComfyUI -> mp4
# The host lives in $(SKYREELS_TESTHOST) (default ~/.cache/skyreels-testhost); set-up is stamped, so re-runs take
# seconds. Extra pytest arguments: make test PYTEST_ARGS="-k smoke -x".

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
SKYREELS_TESTHOST ?= $(HOME)/.cache/skyreels-testhost
export SKYREELS_TESTHOST
HOST_PY := $(SKYREELS_TESTHOST)/venv/bin/python
TEST_DIRS := tests/unit tests/golden tests/e2e tests/browser
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: setup test test-core demo lint

setup:
	$(PYTHON) scripts/setup_test_host.py

test: setup
	$(HOST_PY) -m pytest $(TEST_DIRS) -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

# unit + golden only (no server, no browser)
test-core: setup
	$(HOST_PY) -m pytest tests/unit tests/golden -p no:cacheprovider $(PYTEST_ARGS)

demo: setup
	$(HOST_PY) scripts/demo.py $(DEMO_ARGS)

lint: setup
	$(HOST_PY) -m ruff check .
