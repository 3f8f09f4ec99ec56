#!/usr/bin/env bash
# Creates .venv/ at the repository root and installs only what is missing:
# torch/torchvision, setuptools<81, mmengine, mmcv (with compiled ops), mmdet,
# mmpretrain, mmdeploy (without its protobuf pin), mmsegmentation and this package (editable, with its dev extra). A second run takes seconds.
#
# The environment variables below choose another stack; `make setup-torch21`
# sets them for .venv-torch21/ (torch 2.1.2, numpy<2):
#   VENV          the venv folder (relative to the repository root or absolute)
#   TORCH_SPEC    pip specs of torch and torchvision
#   TORCH_NOTE    how long the torch download takes (said before it starts)
#   NEED_GB       free disk space (GB) a new venv needs: checked before the
#                 first install, so a full disk fails in one line, not midway
#   CONSTRAINTS   pip constraints kept for every install into the venv
#   PYTHON        the interpreter that creates the venv
# mmcv is built against the venv's torch and cached per torch version.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
PY="$VENV/bin/python"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/acnet_backbone"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
TORCH_NOTE="${TORCH_NOTE:-about a minute from a local wheel store, longer from the index}"
# seen: .venv/ 6.6 GB, .venv-torch21/ 5.7 GB (plus its 2.7 GB download while
# it installs), each with a 1 GB margin for the mmcv build
NEED_GB="${NEED_GB:-8}"
CONSTRAINTS="${CONSTRAINTS:-}"
MMENGINE_SPEC="mmengine==0.10.7"
MMCV_VERSION="2.1.0"
MMDET_SPEC="mmdet==3.3.0"
MMPRETRAIN_SPEC="mmpretrain==1.2.0"
MMDEPLOY_SPEC="mmdeploy==1.3.1"
# mmseg.utils imports ftfy and regex, which mmsegmentation does not require
MMSEG_SPEC="mmsegmentation==1.2.2 ftfy regex"
OPENVINO_SPEC="openvino==2026.4.1"
# mmdeploy's own requirements, less its protobuf<=3.20.2 pin (onnx needs a
# newer protobuf: with the pin, pip would break the venv)
MMDEPLOY_DEPS="aenum multiprocess prettytable terminaltables dill"

say() { printf '[setup] %s\n' "$*"; }
# pip's -q still warns about every missing local index folder of some machines
quiet() { grep -v 'is ignored: it is neither a file nor a directory' >&2 || true; }
pipi() { "$PY" -m pip install --disable-pip-version-check -q ${CONSTRAINT_ARGS[@]+"${CONSTRAINT_ARGS[@]}"} "$@" 2> >(quiet); }
has() { "$PY" - "$@" >/dev/null 2>&1; }

cd "$ROOT"
if [ ! -x "$PY" ]; then
  say "creating the virtual environment ${VENV#"$ROOT"/}/ ($(${PYTHON:-python3} --version 2>&1))"
  "${PYTHON:-python3}" -m venv "$VENV"
fi
CONSTRAINT_ARGS=()
if [ -n "$CONSTRAINTS" ]; then
  printf '%s\n' $CONSTRAINTS > "$VENV/acnet-constraints.txt"
  CONSTRAINT_ARGS=(-c "$VENV/acnet-constraints.txt")
fi

if ! has <<'PY'
import torch, torchvision
PY
then
  free_gb=$(df -Pk "$VENV" | awk 'NR==2 {print int($4 / 1048576)}')
  if [ "$free_gb" -lt "$NEED_GB" ]; then
    echo "[setup] error: ${free_gb} GB free on the disk of ${VENV#"$ROOT"/}/, installing needs about ${NEED_GB} GB: free some space and run again" >&2
    exit 1
  fi
  say "installing $TORCH_SPEC${CONSTRAINTS:+ ($CONSTRAINTS)} (large: $TORCH_NOTE)"
  # --no-cache-dir: the download is not kept a second time in pip's cache
  pipi --no-cache-dir $TORCH_SPEC
fi

if ! has <<'PY'
import pkg_resources, setuptools, wheel, ninja, sys
sys.exit(int(setuptools.__version__.split('.')[0]) >= 81)
PY
then
  say "installing build tools (setuptools<81 keeps pkg_resources for mmcv and mmengine, wheel, ninja)"
  pipi "setuptools<81" wheel ninja
fi

if ! has <<'PY'
import mmengine
assert mmengine.__version__ >= '0.10.0'
PY
then
  say "installing $MMENGINE_SPEC"
  pipi "$MMENGINE_SPEC"
fi

mmcv_works() { has <<'PY'
import mmcv, mmcv.ops
from mmcv.ops import nms, RoIAlign
PY
}

# Builds mmcv's wheel against the venv's torch into folder $1 (one folder per
# torch version, so wheels of different torch builds never mix); sets built_wheel.
build_mmcv() {
  mmcv_work=$(mktemp -d)
  trap 'rm -rf "$mmcv_work"' EXIT
  "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
    -d "$mmcv_work" "mmcv==$MMCV_VERSION" 2> >(quiet)
  tar -xzf "$mmcv_work"/mmcv-"$MMCV_VERSION".tar.gz -C "$mmcv_work"
  local src="$mmcv_work/mmcv-$MMCV_VERSION" aten_h
  # torch 2.14's headers require C++20 and mmcv 2.1.0's setup.py hard-codes older
  # standards; torch 2.1's need C++17, which that setup.py already asks for.
  aten_h=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include", "ATen", "ATen.h"))')
  if grep -q 'C++20 or later' "$aten_h"; then
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$src/setup.py"
  fi
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PY" -m pip wheel --disable-pip-version-check -q \
    --no-build-isolation --no-deps -w "$mmcv_work/dist" "$src" 2> >(quiet)
  local wheel_name
  wheel_name=$(basename "$mmcv_work"/dist/mmcv-*.whl)
  cp "$mmcv_work/dist/$wheel_name" "$1/$wheel_name.part"
  mv "$1/$wheel_name.part" "$1/$wheel_name"
  built_wheel="$1/$wheel_name"
}

if ! mmcv_works; then
  torch_version=$("$PY" -c 'import torch; print(torch.__version__)')
  wheel_dir="$CACHE/wheels/torch-$torch_version"
  reinstall=""
  mkdir -p "$wheel_dir"
  wheel_file=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
  legacy=$(ls "$CACHE"/wheels/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel_file" ] && [ -n "$legacy" ] && [ "${torch_version%%+*}" = 2.14.1 ]; then
    # a wheel cached before the cache was keyed by torch version (torch 2.14.1)
    cp "$legacy" "$wheel_dir/" && wheel_file="$wheel_dir/$(basename "$legacy")"
  fi
  if [ -n "$wheel_file" ]; then
    say "installing mmcv from the cached wheel $wheel_file"
    pipi "$wheel_file"
    if ! mmcv_works; then
      say "the cached wheel does not work with torch $torch_version: removing it, building again"
      rm -f "$wheel_file"
      wheel_file=""
      reinstall="--force-reinstall --no-deps"
    fi
  fi
  if [ -z "$wheel_file" ]; then
    say "building mmcv $MMCV_VERSION with its compiled ops from source against torch $torch_version: the one long step, 8 to 16 minutes on 2 cores"
    build_mmcv "$wheel_dir"
    wheel_file="$built_wheel"
    say "mmcv wheel cached at $wheel_file"
    pipi $reinstall "$wheel_file"
  fi
fi

if ! has <<'PY'
import mmdet
assert mmdet.__version__ == '3.3.0'
PY
then
  say "installing $MMDET_SPEC"
  pipi "$MMDET_SPEC"
fi

if ! has <<'PY'
import mmpretrain
assert mmpretrain.__version__ == '1.2.0'
PY
then
  say "installing $MMPRETRAIN_SPEC (ImageNet pretraining of the backbones)"
  pipi "$MMPRETRAIN_SPEC"
fi

if ! has <<'PY'
import mmdeploy, aenum, multiprocess, prettytable, dill
from mmdeploy.apis import torch2onnx
PY
then
  say "installing $MMDEPLOY_SPEC without its protobuf pin (end-to-end ONNX export)"
  pipi $MMDEPLOY_DEPS
  pipi --no-deps "$MMDEPLOY_SPEC"
fi

if ! has <<'PY'
import mmseg, ftfy, regex
import mmseg.utils
assert mmseg.__version__ == '1.2.2'
PY
then
  say "installing $MMSEG_SPEC (semantic segmentation: FCN-32s and dilated FCN)"
  pipi $MMSEG_SPEC
fi

# optional: OpenVINO runs of the end-to-end files (tools/deploy.py --backend
# openvino); without a wheel for this machine everything else still works
if ! has <<'PY'
import openvino
PY
then
  say "installing $OPENVINO_SPEC (optional: tools/deploy.py --backend openvino)"
  pipi $OPENVINO_SPEC || say "openvino not installed: --backend openvino is unavailable, the rest works"
fi

if ! has "$ROOT" <<'PY'
import pathlib, sys
import acnet_backbone, pytest, onnx, onnxruntime, onnxscript, hypothesis, xdist, pytest_timeout, ruff
# the editable install must point at this checkout, not at another clone
sys.exit(pathlib.Path(acnet_backbone.__file__).resolve().parents[1] != pathlib.Path(sys.argv[1]).resolve())
PY
then
  say "installing acnet_backbone (editable) with its dev extra"
  pipi --no-build-isolation -e "$ROOT[dev]"
fi
say "environment ready: $VENV"
