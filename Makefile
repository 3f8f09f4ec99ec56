# The two README commands: `make demo` (the main job) and `make test`.
# Both create .venv/ and install only what is missing (tools/setup_env.sh).
PY := .venv/bin/python
PYTEST_ARGS ?= -n 2

.PHONY: setup test lint demo bench journey study clean

setup:
	@bash tools/setup_env.sh

test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS) tests

lint: setup
	$(PY) -m ruff check --quiet --select E,F,W --ignore E501,E402 acnet_backbone tools tests configs

# the README's from-scratch study (3 backbones x 5 seeds the recipe was not
# tuned on, CPU hours; resumable: a second call trains only what is missing)
study: setup
	$(PY) tools/compare.py configs/shapes/retinanet_fcnresnet18_fpn_shapes.py \
	    configs/shapes/retinanet_acresnet18_fpn_shapes.py \
	    configs/shapes/retinanet_acresnet18-online_fpn_shapes.py \
	    --seeds 10 11 12 13 14 --work-dir work_dirs/study_scratch

# pretrain (mmpretrain) -> fine-tune (mmdet) on the embedded data, one whole
# pipeline per seed (seeds 0-4; resumable)
journey: setup
	$(PY) tools/journey.py

demo: setup
	$(PY) tools/demo.py

bench: setup
	$(PY) tools/benchmark.py

clean:
	rm -rf work_dirs build *.egg-info
