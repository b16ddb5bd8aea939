# The two commands of a fresh machine (README "Quick start"):
#   make demo   set up everything (venv, torch, solo-learn, sfrik-plugin, demo data), then run the demo
#   make test   the same set-up (a second or so when done), then the whole test suite
#   make test-fast   the tests that start no process and train nothing (pytest -m "not slow"; the
#               rule that marks the others is in tests/conftest.py): the inner loop while editing
# CI (.ci/run) runs `make lint test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PYTHON

.PHONY: setup demo test test-fast lint format clean

setup:
	@bash scripts/setup.sh $(VENV)

demo: setup
	@echo "[make] running the demo: $(BIN)/sfrik-demo --workdir sfrik-demo"
	@$(BIN)/sfrik-demo --workdir sfrik-demo

# SFRIK_REQUIRE_SOLO=1: a missing or broken solo-learn fails the adapter tests instead of skipping them.
# Spread over the cores (pytest-xdist), one test file per worker at a time (--dist loadfile): most
# slow tests are single-threaded child processes, and a file's module fixtures are built once
test: setup
	@echo "[make] running the tests: $(BIN)/python -m pytest -q -ra -n auto --dist loadfile"
	@SFRIK_REQUIRE_SOLO=1 $(BIN)/python -m pytest -q -ra -n auto --dist loadfile

# the same, without the tests marked slow (they start processes or train; tests/conftest.py)
test-fast: setup
	@echo "[make] running the fast tests: $(BIN)/python -m pytest -q -ra -m 'not slow' -n auto"
	@SFRIK_REQUIRE_SOLO=1 $(BIN)/python -m pytest -q -ra -m "not slow" -n auto

lint: setup
	@echo "[make] ruff check, ruff format --check, mypy"
	@$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

format: setup
	@$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) sfrik-demo build dist *.egg-info
