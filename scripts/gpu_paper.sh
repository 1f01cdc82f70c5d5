#!/usr/bin/env bash
# The one-call GPU run (docs/gpu.md): install the carried wheels, restore the carried data, benchmark one
# training and K trainings at once, run the study with several trainings per GPU, and leave the benchmarks,
# the plan, the log and the study's results (no checkpoints, no arrays) in OUT: six files (a lent machine
# returns at most eight); what the study needs to be read later (the config it ran, the plan, the measured
# throughput) goes into results/<name>/gpu_call/, inside the archive. Also runs on a CPU machine
# with the project installed (the tests do, with a tiny config): then nothing is installed and, without
# carried data, the data stage runs too.
# Usage: OUT=/path scripts/gpu_paper.sh [CONFIG]   (default configs/paper.yaml)
# Environment:
#   DEADLINE   seconds from the start by which everything, the archive included, must be done (a lent
#              machine's call limit); 0 (default): no deadline, the config runs as it is. With a deadline the
#              study is planned to fit (crack_utils.tools.budget: as many whole seeds as the measured
#              throughput allows, else fewer epochs, said in plan.txt), stopped with Ctrl-C if it runs over,
#              and then reported on the seeds that finished. RESERVE: seconds kept for that (default 90).
#   WORKERS, PER_GPU   Dask workers and trainings per GPU without a deadline (default 3 and 3)
#   BENCH=0    skip the one-training benchmark; BENCH_ARGS (its other options, default none)
#   AMP        bf16 autocast of both measurements: auto (default: the training's rule, on with CUDA), on or off
#   CONCURRENCY  the K measured by crack_utils.tools.concurrency (default "1 2 4 8"; empty: skip), CONC_SECONDS (8)
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
CONFIG=${1:-configs/paper.yaml}
OUT=${OUT:-results/gpu-run}
PY=${PY:-python3}
DEADLINE=${DEADLINE:-0}
mkdir -p "$OUT"
elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( DEADLINE - $(date +%s) + START )); }
if ls .whl/*.whl >/dev/null 2>&1 && ! $PY -c "import papermill, distributed, albumentations; from crack_utils import model" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl || exit 1
fi
[ -d .site ] && export PYTHONPATH="$PWD/.site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
name=$($PY -c "from crack_utils.study.config import load_config; print(load_config('$CONFIG')['name'])") || exit 1
paths=$($PY -m crack_utils.study.layout "$name") || exit 1
eval "$paths"  # study, data_dir, prepared, ... (crack_utils/study/layout.py)
CALL="$study/gpu_call"  # the call's own record, archived with the study
mkdir -p "$CALL"
cap() { local c=$1; [ "$DEADLINE" -gt 0 ] && [ $(( DEADLINE / $2 )) -lt "$c" ] && c=$(( DEADLINE / $2 )); echo "$c"; }
stages="data distance train evaluate report"
CARRY=${CARRY:-.gpu}
if ls "$CARRY"/data.npz.part-* >/dev/null 2>&1; then
  # the data stage ran where the data is (scripts/gpu_pack.sh); never overwrite real prepared arrays
  if [ ! -f "$prepared" ]; then
    carried=$(mktemp "${TMPDIR:-/tmp}/carried-data.XXXXXX")
    cat "$CARRY"/data.npz.part-* > "$carried"
    $PY -m crack_utils.tools.compact_data decode "$carried" "$data_dir" || exit 1
    rm -f "$carried"
    echo "carried data (JPEG, scripts/gpu_pack.sh) decoded into $data_dir" | tee "$CALL/data.txt"
  fi
  stages="distance train evaluate report"
fi
echo "setup_seconds: $(elapsed)" | tee "$OUT/wall.txt"
t0=$(date +%s)
if [ "${BENCH:-1}" = 1 ]; then
  timeout "$(cap 180 8)" $PY -m crack_utils.tools.bench --data "$data_dir" --amp "${AMP:-auto}" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.txt" \
    || echo "benchmark failed (exit $?); the study runs anyway" | tee -a "$OUT/bench.txt"
fi
CONCURRENCY=${CONCURRENCY-1 2 4 8}
if [ -n "$CONCURRENCY" ]; then
  timeout "$(cap 240 5)" $PY -m crack_utils.tools.concurrency --k $CONCURRENCY --seconds "${CONC_SECONDS:-8}" \
    --data "$data_dir" --amp "${AMP:-auto}" --json "$CALL/concurrency.json" 2>&1 | tee "$OUT/concurrency.txt" \
    || echo "concurrency measurement failed or incomplete (exit $?)" | tee -a "$OUT/concurrency.txt"
fi
if [ ! -f "$CALL/concurrency.json" ] && [ -f "$OUT/bench.txt" ]; then
  # no K measured: one training's rate from the benchmark (the plan then assumes no gain from more at once)
  $PY -c "import json, sys; f = dict(l.split(': ', 1) for l in open(sys.argv[1]) if l.startswith('train_img_per_s_distance: ')); \
json.dump({'device': 'from bench.txt', 'img_per_s': {1: float(f['train_img_per_s_distance'])}}, open(sys.argv[2], 'w'))" \
    "$OUT/bench.txt" "$CALL/concurrency.json" 2>/dev/null && echo "planned from the benchmark's one-training rate" | tee -a "$OUT/concurrency.txt"
fi
t1=$(date +%s)
echo "benchmark_seconds: $((t1 - t0))" | tee -a "$OUT/wall.txt"
run_config=$CONFIG
workers=${WORKERS:-3}; per_gpu=${PER_GPU:-3}
stop=()
if [ "$DEADLINE" -gt 0 ]; then
  reserve=${RESERVE:-90}  # the archive, and the report on finished seeds if the study is stopped
  if [ -f "$CALL/concurrency.json" ]; then
    $PY -m crack_utils.tools.budget plan --config "$CONFIG" --throughput "$CALL/concurrency.json" \
      --budget-s $(( $(left) - reserve )) --write "$CALL/config-run.yaml" --env "$CALL/plan.env" 2>&1 | tee "$OUT/plan.txt"
  fi
  if [ -f "$CALL/plan.env" ]; then
    . "$CALL/plan.env"
    run_config="$CALL/config-run.yaml"; workers=$WORKERS; per_gpu=$WORKERS
  fi
  stop=(timeout -s INT -k 15 "$(( $(left) - reserve ))")
fi
status=0
if [ "$DEADLINE" -gt 0 ] && [ $(( $(left) - reserve )) -lt 30 ]; then
  echo "no time left for the study before the deadline ($(left) s left, $reserve s reserved)" | tee "$OUT/study.log"
  status=1
else
  "${stop[@]}" $PY -m crack_utils.pipeline --config "$run_config" --stages $stages --no-progress \
    --workers "$workers" --per-gpu "$per_gpu" 2>&1 | tee "$OUT/study.log" || status=$?
fi
t2=$(date +%s)
echo "study_seconds: $((t2 - t1))" | tee -a "$OUT/wall.txt"
if [ "$status" != 0 ] && [ "$DEADLINE" -gt 0 ] && [ "$(left)" -gt 10 ]; then
  # stopped by the deadline (or failed): a report of the seeds whose every loss was evaluated
  if $PY -m crack_utils.tools.budget completed --config "$run_config" --write "$CALL/config-report.yaml" \
       2>&1 | tee -a "$OUT/plan.txt"; then
    timeout -s INT -k 5 "$(( $(left) - 10 ))" $PY -m crack_utils.pipeline --config "$CALL/config-report.yaml" \
      --stages report --no-progress 2>&1 | tee -a "$OUT/study.log" && status=0
  fi
  echo "report_seconds: $(( $(date +%s) - t2 ))" | tee -a "$OUT/wall.txt"
fi
cp "$OUT"/*.txt "$OUT/study.log" "$CALL"/ 2>/dev/null
# the committed files of the study: no checkpoints, prepared arrays, distance maps or HTML (predictions.npz and
# 05_report/test_split.npz are kept: notebook 05 reruns from them, see .gitignore)
tar czf "$OUT/results.tgz" --exclude="$CHECKPOINTS" --exclude="$DATA/*.npz" --exclude="$DISTANCE/*.npz" \
  --exclude='*.html' --exclude='.tmp-*' --exclude=.lock "$study" \
  || echo "could not archive $study" | tee -a "$OUT/wall.txt"
echo "total_seconds: $(elapsed)" | tee -a "$OUT/wall.txt"
exit $status
