#!/usr/bin/env bash
# Prepare, on this machine, what the one-call GPU run carries (docs/gpu.md):
#  1. the study's data stage, run here where ../shared/data is (results/<name>/01_data/; its small files
#     travel with the working tree, the 490 MB prepared.npz does not);
#  2. .gpu/data.npz.part-*: the prepared arrays, JPEG-encoded (QUALITY, default 80; its effect on the scores
#     is measured in results/README.md) with bit-packed masks, split into PART_MB pieces so that the data
#     can travel in two calls when one call's 64 MiB does not hold it beside the working tree;
#  3. .whl/: the wheels of requirements/gpu-wheels.txt for the machine's Python 3.12 (skipped with NO_WHEELS=1).
#  4. the plan of the device calls that carry them (python -m crack_utils.tools.device_call): each call at
#     most 60 MiB with the tracked tree, back to back while the machine stays warm; exits 1 if one cannot fit.
# Usage: scripts/gpu_pack.sh [CONFIG]   (default configs/paper.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/paper.yaml}
QUALITY=${QUALITY:-80}
PART_MB=${PART_MB:-18}
PY=${PY:-.venv/bin/python}
name=$($PY -c "from crack_utils.study.config import load_config; print(load_config('$CONFIG')['name'])")
paths=$($PY -m crack_utils.study.layout "$name")
eval "$paths"  # study, data_dir, ... (crack_utils/study/layout.py)
$PY -m crack_utils.pipeline --config "$CONFIG" --stages data --no-progress
mkdir -p .gpu
rm -f .gpu/data.npz .gpu/data.npz.part-*
$PY -m crack_utils.tools.compact_data encode "$data_dir" .gpu/data.npz --quality "$QUALITY"
split -b "${PART_MB}m" .gpu/data.npz .gpu/data.npz.part-
rm .gpu/data.npz
ls -l .gpu
if [ "${NO_WHEELS:-0}" != 1 ]; then
  rm -rf .whl && mkdir -p .whl  # one version of each package: two would stop the install there
  sed -e 's/#.*//' -e 's/[[:space:]]//g' requirements/gpu-wheels.txt | while read -r pin; do
    [ -n "$pin" ] || continue
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$pin"
  done
  du -sh .whl
fi
# the device calls that carry it (crack_utils/tools/device_call.py): refuses, with the sizes, when a piece
# cannot travel beside the tracked tree; otherwise prints the back-to-back calls to make
if [ "${NO_WHEELS:-0}" != 1 ]; then $PY -m crack_utils.tools.device_call .gpu .whl; else $PY -m crack_utils.tools.device_call .gpu; fi
