# The two README commands: `make demo` (the main job) and `make test`.
# Both create .venv/ and install only what is missing (tools/setup_env.sh).
PY := .venv/bin/python
# Two xdist workers, no reruns: a crashed worker fails the run. (The worker
# segfault once rerun here was OpenVINO's CPU plugin leaving a dangling
# alternate signal stack; deploy/backends/openvino.py keeps one Core per
# process, see openvino_core().)
PYTEST_ARGS ?= -n 2 --dist load

.PHONY: setup test lint demo bench journey study study-val1000 study-rtmdet study-seg journey-seg study-start study-start-seg data-trees study-trees clean

setup:
	@bash tools/setup_env.sh

test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS) tests

lint: setup
	$(PY) -m ruff check --quiet --select E,F,W --ignore E501,E402 acnet_backbone tools tests configs

# The older stack most mmdet users have (OpenMMLab's prebuilt mmcv 2.1.0 wheels
# stop at torch 2.1): torch 2.1.2 + torchvision 0.16.2 with numpy<2 and the same
# OpenMMLab versions, in .venv-torch21/ (the same set-up script, parametrised).
PY21 := .venv-torch21/bin/python
TORCH21_ENV := VENV=.venv-torch21 CONSTRAINTS="numpy<2" NEED_GB=10 \
    TORCH_SPEC="torch==2.1.2 torchvision==0.16.2" \
    TORCH_NOTE="2.7 GB from the package index with the nvidia-* CUDA wheels it pulls, which run on a CPU too: 1.5 minutes on a fast link, much longer on a slow one"

.PHONY: setup-torch21 test-torch21
setup-torch21:
	@$(TORCH21_ENV) bash tools/setup_env.sh

test-torch21: setup-torch21
	$(PY21) -m pytest $(PYTEST_ARGS) tests

# the README's from-scratch study (3 backbones x 5 seeds the recipe was not
# tuned on, CPU hours; resumable: a second call trains only what is missing)
study: setup
	$(PY) tools/compare.py configs/shapes/retinanet_fcnresnet18_fpn_shapes.py \
	    configs/shapes/retinanet_acresnet18_fpn_shapes.py \
	    configs/shapes/retinanet_acresnet18-online_fpn_shapes.py \
	    --seeds 10 11 12 13 14 --work-dir work_dirs/study_scratch

# the same checkpoints evaluated again on 1000 fresh val images (no training)
study-val1000: setup
	$(PY) tools/make_shapes_dataset.py --out data/shapes_val1000 --train 1 --val 1000 --seed 500
	$(PY) tools/reevaluate.py work_dirs/study_scratch --out-dir work_dirs/study_scratch_val1000 \
	    --cfg-options val_dataloader.dataset.data_root=data/shapes_val1000/ \
	    val_evaluator.ann_file=data/shapes_val1000/annotations/val.json

# RTMDet-tiny, plain vs ACB CSPNeXt, on the embedded data (seeds 0-4)
study-rtmdet: setup
	$(PY) tools/compare.py configs/rtmdet_shapes/rtmdet_tiny_shapes.py \
	    configs/rtmdet_shapes/rtmdet_tiny-acb_shapes.py --seeds 0 1 2 3 4 \
	    --work-dir work_dirs/study_rtmdet

# segmentation: FCN-32s and the dilated (d8) FCN, plain vs ACB ResNet-18
study-seg: setup
	$(PY) tools/make_shapes_dataset.py --task seg
	$(PY) tools/compare.py configs/seg/fcn32s_fcnresnet18_shapes.py \
	    configs/seg/fcn32s_acresnet18_shapes.py --seeds 0 1 2 --metric mIoU \
	    --work-dir work_dirs/study_seg_fcn32s
	$(PY) tools/compare.py configs/seg/fcn-d8_fcnresnet18_shapes.py \
	    configs/seg/fcn-d8_acresnet18_shapes.py --seeds 0 1 2 --metric mIoU \
	    --work-dir work_dirs/study_seg_d8

# the segmentors fine-tuned from `make journey`'s pretrainings (reused; missing
# seeds are pretrained there), one whole pipeline per seed
journey-seg: setup
	$(PY) tools/make_shapes_dataset.py --task seg
	$(PY) tools/journey.py --work-dir work_dirs/journey_seg_d8 \
	    --pretrain-dir work_dirs/journey/pretrain --metric mIoU --finetune \
	    configs/seg/fcn-d8_fcnresnet18_shapes-ft.py \
	    configs/seg/fcn-d8_acresnet18_shapes-ft.py
	$(PY) tools/journey.py --work-dir work_dirs/journey_seg_fcn32s \
	    --pretrain-dir work_dirs/journey/pretrain --metric mIoU --finetune \
	    configs/seg/fcn32s_fcnresnet18_shapes-ft.py \
	    configs/seg/fcn32s_acresnet18_shapes-ft.py

# which starting point: the plain pretraining fine-tuned with ACB branches
# added at fine-tuning ('bn'/'online', gamma 0 and 1/3), the ACB pretraining
# (the paper's route), the ACB pretraining fused into a plain ResNet; each
# against plain -> plain, paired by pipeline seed (seeds 0-4, CPU hours,
# resumable; reuses `make journey`'s pretrainings)
START_DET = $(foreach r,plain:retinanet_fcnresnet18_fpn_shapes-ft \
    plain:retinanet_acresnet18-add-g0_fpn_shapes-ft \
    acb:retinanet_acresnet18_fpn_shapes-ft \
    plain:retinanet_acresnet18-online-add-g0_fpn_shapes-ft \
    acb-fused:retinanet_fcnresnet18-fused-acb_fpn_shapes-ft \
    plain:retinanet_acresnet18-add-g1-3_fpn_shapes-ft \
    plain:retinanet_acresnet18-online-add-g1-3_fpn_shapes-ft \
    plain:retinanet_acresnet18-add-g1-3-s2-4_fpn_shapes-ft, \
    --route $(subst :,:configs/shapes/,$(r)).py)
START_SEG = $(foreach r,plain:fcn-d8_fcnresnet18_shapes-ft \
    plain:fcn-d8_acresnet18-add-g1-3_shapes-ft \
    acb:fcn-d8_acresnet18_shapes-ft \
    plain:fcn-d8_acresnet18-add-g0_shapes-ft \
    plain:fcn-d8_acresnet18-online-add-g0_shapes-ft \
    acb-fused:fcn-d8_fcnresnet18-fused-acb_shapes-ft, \
    --route $(subst :,:configs/seg/,$(r)).py)

study-start: setup
	$(PY) tools/journey.py --work-dir work_dirs/start_det \
	    --pretrain-dir work_dirs/journey/pretrain $(START_DET)

study-start-seg: setup
	$(PY) tools/make_shapes_dataset.py --task seg
	$(PY) tools/journey.py --work-dir work_dirs/start_seg_d8 --metric mIoU \
	    --pretrain-dir work_dirs/journey/pretrain $(START_SEG)

# real images: the NEON tree-crown set from the deepforest wheel (downloaded
# once with pip, sha256-checked, never imported), written to data/trees/
data-trees: setup
	@test -f data/trees/annotations/val.json || $(PY) tools/make_trees_dataset.py

# plain vs ACB on the tree crowns, seeds 0-4: from scratch (tools/compare.py)
# and fine-tuned from `make journey`'s plain pretraining, plain vs the
# recommended route (ACB branches added at gamma 1/3). Seed by seed, so that an
# interrupted study holds whole pairs; resumable (finished runs are reused).
TREES_SEEDS ?= 0 1 2 3 4
TREES_SCRATCH = configs/trees/retinanet_fcnresnet18_fpn_trees.py \
    configs/trees/retinanet_acresnet18_fpn_trees.py
TREES_ROUTES = --route plain:configs/trees/retinanet_fcnresnet18_fpn_trees-ft.py \
    --route plain:configs/trees/retinanet_acresnet18-add-g1-3_fpn_trees-ft.py
study-trees: data-trees
	@set -e; seeds=""; for s in $(TREES_SEEDS); do seeds="$$seeds $$s"; \
	  $(PY) tools/compare.py $(TREES_SCRATCH) --seeds $$seeds \
	      --work-dir work_dirs/trees_scratch; \
	  $(PY) tools/journey.py --work-dir work_dirs/trees_ft --seeds $$seeds \
	      --pretrain-dir work_dirs/journey/pretrain $(TREES_ROUTES); \
	done

# DeepForest (the peer of the whole-image study) in its own virtualenv, never in
# .venv: deepforest 2.1.0 beside the same torch / torchvision as .venv, with the
# versions the study ran with pinned. Skipped when it imports already.
DF_VENV := .venv-deepforest
DF_SPEC := deepforest==2.1.0 torch==2.14.1 torchvision==0.29.1 \
    pytorch-lightning==2.6.6 numpy==2.4.6 pandas==3.1.1
.PHONY: deepforest-venv whole-image
deepforest-venv:
	@$(DF_VENV)/bin/python -c "import sys, deepforest; sys.exit(deepforest.__version__ != '2.1.0')" 2>/dev/null || { \
	  echo "[deepforest-venv] creating $(DF_VENV)/ with $(DF_SPEC) (several GB, minutes)"; \
	  $${PYTHON:-python3} -m venv $(DF_VENV) && \
	  $(DF_VENV)/bin/python -m pip install --disable-pip-version-check -q $(DF_SPEC); }

# the whole-image study (configs/trees/whole_image_*.json ->
# docs/results/whole_image.json and its tables): deploys the trained ACB tree
# detector (seed 0 of `make study-trees`) and the random-weight ACResNet-50
# (each once), then the accuracy and the speed study (one thread; the speed
# study takes about 20 minutes on 2 cores)
WI_RUN := work_dirs/trees_scratch/retinanet_acresnet18_fpn_trees/seed_0
WI_R50 := work_dirs/trees_r50_random
WI_DEPLOY := --int8 --backend openvino --precision fp32 bf16 int8 --threads 1
WI_ENV := OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
whole-image: data-trees deepforest-venv
	@test -f $(WI_RUN)/iter_1000.pth || { echo "error: $(WI_RUN)/iter_1000.pth is missing: make study-trees TREES_SEEDS=0 trains it"; exit 2; }
	test -f $(WI_R50)/random.pth || $(PY) tools/whole_image_study.py prepare-r50 --out-dir $(WI_R50)
	test -f work_dirs/deploy_trees_r50/end2end_int8.onnx || $(WI_ENV) $(PY) tools/deploy.py \
	    $(WI_R50)/retinanet_acresnet50_fpn_trees.py $(WI_R50)/random.pth \
	    --out-dir work_dirs/deploy_trees_r50 $(WI_DEPLOY)
	test -f work_dirs/deploy_trees_acb_s0/end2end_int8.onnx || $(WI_ENV) $(PY) tools/deploy.py \
	    $(WI_RUN)/config.py $(WI_RUN)/iter_1000.pth \
	    --out-dir work_dirs/deploy_trees_acb_s0 $(WI_DEPLOY)
	$(WI_ENV) $(PY) tools/whole_image_study.py accuracy configs/trees/whole_image_accuracy.json \
	    --out docs/results/whole_image.json
	$(WI_ENV) $(PY) tools/whole_image_study.py speed configs/trees/whole_image_speed.json \
	    --out docs/results/whole_image.json
	$(PY) tools/make_docs.py

# pretrain (mmpretrain) -> fine-tune (mmdet) on the embedded data, one whole
# pipeline per seed (seeds 0-4; resumable)
journey: setup
	$(PY) tools/journey.py

demo: setup
	$(PY) tools/demo.py

bench: setup
	$(PY) tools/benchmark.py

# regenerate every results table of README.md, docs/ and configs/*/README.md
# from the JSON in docs/results/ (tests/test_docs.py fails on any difference)
.PHONY: docs
docs: setup
	$(PY) tools/make_docs.py

clean:
	rm -rf work_dirs build *.egg-info
