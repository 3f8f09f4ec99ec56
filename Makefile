# The two README commands: `make demo` (the main job) and `make test`.
# Both create .venv/ and install only what is missing (tools/setup_env.sh).
PY := .venv/bin/python
PYTEST_ARGS ?= -n 2

.PHONY: setup test demo bench clean

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS) tests

demo: setup
	$(PY) tools/demo.py

bench: setup
	$(PY) tools/benchmark.py

clean:
	rm -rf work_dirs build *.egg-info
