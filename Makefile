# The README commands:
#   make test   set up the offline ComfyUI test host, then run every test (unit, golden, e2e, browser)
#   make demo   set up the host, then run "workflows/SkyReels-V2 Text to Video.json" in the embedded ComfyUI -> mp4
# COMFY picks the ComfyUI version (scripts/setup_test_host.py COMFY_VERSIONS):
#   COMFY=oldest  ComfyUI 0.3.75, frontend 1.32.9 (the oldest supported; default)
#   COMFY=newest  ComfyUI 0.30.0 (newest obtainable offline), served with the newest frontend 1.58.1
#   make test-all runs the whole suite on both, oldest first (what CI, .ci/run, runs)
# Each version has its own host: $$SKYREELS_TESTHOST, else ~/.cache/skyreels-testhost (oldest) or
# ~/.cache/skyreels-testhost-newest;
# set-up is stamped, so re-runs take seconds. Extra pytest arguments: make test PYTEST_ARGS="-k smoke -x".

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
COMFY ?= oldest
export SKYREELS_COMFY := $(COMFY)
HOST_PY := $(shell $(PYTHON) scripts/setup_test_host.py --comfy $(COMFY) --print-host)/venv/bin/python
TEST_DIRS := tests/unit tests/golden tests/e2e tests/browser
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: setup test test-all test-oldest test-newest test-core demo lint

setup:
	$(PYTHON) scripts/setup_test_host.py --comfy $(COMFY)

test: setup
	$(HOST_PY) -m pytest $(TEST_DIRS) -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

# the whole suite on each tested ComfyUI version, oldest first, each in its own host (SKYREELS_TESTHOST is not
# passed down); the newest runs even when the oldest failed, and the target fails when either did
test-all:
	@rc=0; for v in oldest newest; do \
	  echo "=== make test COMFY=$$v"; env -u SKYREELS_TESTHOST $(MAKE) --no-print-directory test COMFY=$$v || rc=1; \
	done; exit $$rc

test-oldest:
	$(MAKE) --no-print-directory test COMFY=oldest

test-newest:
	$(MAKE) --no-print-directory test COMFY=newest

# unit + golden only (no server, no browser)
test-core: setup
	$(HOST_PY) -m pytest tests/unit tests/golden -p no:cacheprovider $(PYTEST_ARGS)

demo: setup
	$(HOST_PY) scripts/demo.py $(DEMO_ARGS)

lint: setup
	$(HOST_PY) -m ruff check .
