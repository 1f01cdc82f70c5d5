#!/usr/bin/env bash
# The one-call GPU run (README "On a GPU"): install the carried wheels, restore the carried data, benchmark,
# run the study with several trainings per GPU, and leave the benchmark, the log and the study's results
# (no checkpoints, no arrays) in OUT. Also runs on a CPU machine with the project installed (the tests do,
# with a tiny config): then nothing is installed and, without carried data, the data stage runs too.
# Usage: OUT=/path scripts/gpu_paper.sh [CONFIG]   (default configs/paper.yaml)
# Environment: WORKERS, PER_GPU (Dask workers; default 3 on one GPU), BENCH=0 to skip the benchmark,
# BENCH_ARGS (default --amp).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/paper.yaml}
OUT=${OUT:-results/gpu-run}
PY=${PY:-python3}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1 && ! $PY -c "import segmentation_models_pytorch, papermill, distributed" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl
fi
[ -d .site ] && export PYTHONPATH="$PWD/.site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
name=$($PY -c "from crack_utils.config import load_config; print(load_config('$CONFIG')['name'])")
stages="data distance train evaluate report"
CARRY=${CARRY:-.gpu}
if ls "$CARRY"/data.npz.part-* >/dev/null 2>&1; then
  # the data stage ran where the data is (scripts/gpu_pack.sh); never overwrite real prepared arrays
  if [ ! -f "results/$name/01_data/prepared.npz" ]; then
    carried=$(mktemp "${TMPDIR:-/tmp}/carried-data.XXXXXX")
    trap 'rm -f "$carried"' EXIT
    cat "$CARRY"/data.npz.part-* > "$carried"
    $PY -m crack_utils.compact_data decode "$carried" "results/$name/01_data"
    rm -f "$carried"
    echo "carried data (JPEG, scripts/gpu_pack.sh) decoded into results/$name/01_data" | tee "$OUT/data.txt"
  fi
  stages="distance train evaluate report"
fi
t0=$(date +%s)
if [ "${BENCH:-1}" = 1 ]; then
  $PY -m crack_utils.bench --data "results/$name/01_data" ${BENCH_ARGS:---amp} 2>&1 | tee "$OUT/bench.txt" \
    || echo "benchmark failed (exit $?); the study runs anyway" | tee -a "$OUT/bench.txt"
fi
t1=$(date +%s)
status=0
$PY -m crack_utils.pipeline --config "$CONFIG" --stages $stages --no-progress \
  --workers "${WORKERS:-3}" --per-gpu "${PER_GPU:-3}" 2>&1 | tee "$OUT/study.log" || status=$?
t2=$(date +%s)
echo "benchmark_seconds: $((t1 - t0))" | tee "$OUT/wall.txt"
echo "study_seconds: $((t2 - t1))" | tee -a "$OUT/wall.txt"
# the committed files of the study: no checkpoints, prepared arrays, distance maps or HTML (predictions.npz and
# 05_report/test_split.npz are kept: notebook 05 reruns from them, see .gitignore)
tar czf "$OUT/results.tgz" --exclude=checkpoints --exclude='01_data/*.npz' --exclude='02_distance/*.npz' \
  --exclude='*.html' --exclude='.tmp-*' "results/$name" \
  || echo "could not archive results/$name" | tee -a "$OUT/wall.txt"
exit $status
