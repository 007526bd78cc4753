#!/usr/bin/env bash
# GPU benchmarks in one run on a CUDA machine (see README "Performance"):
#   paper config at 480x640: FPS for fp32, fp16 autocast, channels_last, torch.compile,
#   peak memory; the node's end-to-end latency/FPS (paper, fp16); the CUDA tests.
# Uses that machine's python3 (with torch). Packages it lacks can be put as wheels in
# .whl/ (open_clip, timm, the ROS 2 wheels for its Python: see README).
# Usage: bash bench/gpu.sh [OUTDIR]    BUDGET=seconds (default 540) caps the whole run.
set -u
OUTDIR=${1:-${OUT:-out/bench_gpu}}
mkdir -p "$OUTDIR"
LOG="$OUTDIR/gpu.log"
PY=${PYTHON:-python3}
END=$(( $(date +%s) + ${BUDGET:-540} ))
export PYTHONUNBUFFERED=1 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-42}
export ROS_HOME=${ROS_HOME:-/tmp/textdepth_ros_home}
if ls .whl/*.whl >/dev/null 2>&1; then
  # --prefix keeps the ROS wheels' libraries and share/ together; their .pth bootstrap
  # does not run from PYTHONPATH, so set what it would set.
  $PY -m pip install -q --no-index --no-deps --no-compile --prefix /tmp/tdprefix .whl/*.whl 2>&1 | grep -v WARNING
  SP=$(echo /tmp/tdprefix/lib/python3*/site-packages)
  export PYTHONPATH=$SP
  export LD_LIBRARY_PATH=/tmp/tdprefix/lib:$(ls -d "$SP"/ros_*.libs 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}
  export AMENT_PREFIX_PATH=/tmp/tdprefix _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
# step LIMIT CMD...: run CMD for at most LIMIT seconds, never past the overall budget.
step() {
  local limit=$1; shift
  local left=$(( END - $(date +%s) - 5 ))
  (( left < limit )) && limit=$left
  if (( limit < 10 )); then echo "=== skipped (budget spent): $*" | tee -a "$LOG"; return; fi
  echo "=== $* (limit ${limit}s)" | tee -a "$LOG"
  timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$LOG"
  echo "=== exit ${PIPESTATUS[0]}" | tee -a "$LOG"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"
$PY -c "import torch, timm, open_clip; print('torch', torch.__version__, 'timm', timm.__version__, 'open_clip', open_clip.__version__)" 2>&1 | tee -a "$LOG"
step 150 $PY bench/model_speed.py --config paper --device cuda --repeats 30 --modes fp32,fp16,channels_last_fp16 --json "$OUTDIR/paper_eager.json"
step 40 $PY bench/model_speed.py --config tiny --device cuda --repeats 30 --modes fp32,fp16 --json "$OUTDIR/tiny.json"
step 60 $PY -m pytest -q -p no:cacheprovider test/test_cuda.py
step 150 $PY bench/node_bench.py --config paper --device cuda --fp16 --frames 20 --rate 60 --stream-seconds 8 --json "$OUTDIR/node_paper.json"
step 200 $PY bench/node_bench.py --config paper --device cuda --fp16 --compile --frames 12 --rate 60 --stream-seconds 6 --json "$OUTDIR/node_paper_compiled.json"
step 240 $PY bench/model_speed.py --config paper --device cuda --repeats 30 --modes compile_fp16 --json "$OUTDIR/paper_compile.json"
echo "done: $OUTDIR" | tee -a "$LOG"
