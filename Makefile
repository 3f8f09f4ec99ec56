# The two README commands: `make demo` (the main job) and `make test`.
# Both create .venv/ and install only what is missing (tools/setup_env.sh).
PY := .venv/bin/python
PYTEST_ARGS ?= -n 2

.PHONY: setup test lint demo bench clean

setup:
	@bash tools/setup_env.sh

test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS) tests

lint: setup
	$(PY) -m ruff check --quiet --select E,F,W --ignore E501,E402 acnet_backbone tools tests configs

demo: setup
	$(PY) tools/demo.py

bench: setup
	$(PY) tools/benchmark.py

clean:
	rm -rf work_dirs build *.egg-info
