#!/usr/bin/env bash
# Every GPU number of docs/performance.md in one run on a CUDA machine:
#   1. model speed, paper config 480x640: eager / CUDA graph per precision (fp32, fp16,
#      bf16), graph vs eager difference, operators + kernels per forward (torch.profiler);
#   1b. half precision with the matmul weights cast once vs cast by autocast per forward
#      (bench/half_weights_bench.py): same depth, casts and kernels per forward, time;
#   1c. window attentions keeping their bias vs building it per forward
#      (bench/attention_bias_bench.py, CUDA graphs fp16): same depth, kernels, replay time;
#   2. the CUDA tests (graph = eager, text change, LRU, capture-failure fallback, fp16);
#   3. depth_node with CUDA graphs (fp16): e2e / bare ratio, 60 and 120 Hz streams;
#   4. depth_node with torch.compile + CUDA graphs (fp16) from an EMPTY compile cache:
#      first start, ratio, streams, kernels per forward and difference from eager, then a
#      restart that reuses the cache on disk;
#   3a. the same at 120 Hz without the cloud and with a client that keeps its freed
#      buffers (docs/performance.md): is the 120 Hz shortfall the client's?
#   3b. the node's plumbing on this host with the forward replaced by a GIL-free 5.6 ms
#      wait (bench/gil_bench.py --compare-executors, CPU only, ~40 s): 120 Hz FPS, forward
#      p90 and output age on SingleThreadedExecutor and on EventsExecutor (the node's
#      default where rclpy has it; steps 3 and 4 run on the default);
#   5. model speed compile + graph fp16 (cache warm from 4; the first step the budget
#      drops: 4 already has the compile + graph forward);
#   6. a summary table (summary.json).
# Output: OUTDIR/{gpu.log, steps.tsv, model_paper.json, half.json, attention_bias.json,
# node_graph.json, node_graph_lean.json, node_compile.json, model_paper_compile.json, gil.json,
# summary.json} (11 files, one folder).
# Uses that machine's python3 (with torch); packages it lacks come as cp312 wheels in
# .whl/ (bash bench/fetch_gpu_wheels.sh here first; carry `.whl`).
# Usage: bash bench/gpu.sh [OUTDIR]            BUDGET=seconds (default 480) caps the whole run
#        (the compile steps run only with ~720 or more; a step that cannot finish is skipped).
#        bash bench/gpu.sh --cpu-check [OUTDIR] the same steps, tiny config at 64x96 on CPU:
#        checks the plumbing (options, JSON, summary) where no GPU is.
set -u
CPU_CHECK=0
if [[ "${1:-}" == "--cpu-check" ]]; then CPU_CHECK=1; shift; fi
OUTDIR=${1:-${OUT:-out/bench_gpu}}
mkdir -p "$OUTDIR"
LOG="$OUTDIR/gpu.log"; STEPS="$OUTDIR/steps.tsv"
: > "$LOG"; printf "step\tlimit_s\texit\tseconds\n" > "$STEPS"
PY=${PYTHON:-python3}
if (( CPU_CHECK )); then
  CONFIG=tiny DEVICE=cpu H=64 W=96 REPEATS=3 FRAMES=3 STREAM_S=2 RATES=30,120 SCALE=6
  BUDGET=${BUDGET:-3600}; PY=${PYTHON:-.venv/bin/python}
else
  CONFIG=paper DEVICE=cuda H=480 W=640 REPEATS=20 FRAMES=12 STREAM_S=4 RATES=60,120 SCALE=1
fi
END=$(( $(date +%s) + ${BUDGET:-480} ))
export PYTHONUNBUFFERED=1 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-42}
export ROS_HOME=${ROS_HOME:-/tmp/textdepth_ros_home}
if ls .whl/*.whl >/dev/null 2>&1 && (( ! CPU_CHECK )); then
  # --prefix keeps the ROS wheels' libraries and share/ together; their .pth bootstrap
  # does not run from PYTHONPATH, so set what it would set.
  $PY -m pip install -q --no-index --no-deps --no-compile --prefix /tmp/tdprefix .whl/*.whl 2>&1 | grep -v WARNING
  SP=$(echo /tmp/tdprefix/lib/python3*/site-packages)
  export PYTHONPATH=$SP
  export LD_LIBRARY_PATH=/tmp/tdprefix/lib:$(ls -d "$SP"/ros_*.libs 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}
  export AMENT_PREFIX_PATH=/tmp/tdprefix _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
# A fresh compile cache, so step 4 measures a first start; step 5 reuses it.
CACHE=$(mktemp -d /tmp/textdepth_compile_cache.XXXX)

# [NEEDS=S] step NAME LIMIT CMD...: run CMD for at most LIMIT (x SCALE) seconds, never past
# the budget; skipped when less than NEEDS (x SCALE, default 15) seconds are left, so a step
# that cannot finish in what is left does not spend device time being killed.
step() {
  local name=$1 limit=$(( $2 * SCALE )) needs=$(( ${NEEDS:-15} * SCALE )); shift 2
  local left=$(( END - $(date +%s) - 20 ))  # 20 s kept for the summary
  (( left < limit )) && limit=$left
  if (( limit < needs )); then
    echo "=== $name: skipped (budget: ${limit}s left, needs ${needs}s)" | tee -a "$LOG"
    printf "%s\t0\tskipped\t0\n" "$name" >> "$STEPS"; return
  fi
  echo "=== $name (limit ${limit}s): $*" | tee -a "$LOG"
  local start=$(date +%s)
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc after $(( $(date +%s) - start )) s" | tee -a "$LOG"
  printf "%s\t%s\t%s\t%s\n" "$name" "$limit" "$rc" "$(( $(date +%s) - start ))" >> "$STEPS"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"; } | tee -a "$LOG"
$PY -c "import torch, timm, open_clip, rclpy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'timm', timm.__version__, 'open_clip', open_clip.__version__)" 2>&1 | tee -a "$LOG"
common=(--config $CONFIG --device $DEVICE --height $H --width $W)
CKPT=/tmp/textdepth_${CONFIG}_random.safetensors  # one random-weight checkpoint for both node benches
node=("${common[@]}" --checkpoint "$CKPT" --fp16 --frames $FRAMES --warmup 2 --rate $RATES --stream-seconds $STREAM_S)
step model 120 $PY bench/model_speed.py "${common[@]}" --repeats $REPEATS --profile fp16,graph_fp16 \
  --modes fp32,fp16,bf16,graph_fp32,graph_fp16,graph_bf16 --json "$OUTDIR/model_paper.json"
step half 90 $PY bench/half_weights_bench.py "${common[@]}" --repeats $REPEATS --json "$OUTDIR/half.json"
step attention_bias 60 $PY bench/attention_bias_bench.py "${common[@]}" --repeats $REPEATS \
  --json "$OUTDIR/attention_bias.json"
step tests 100 $PY -m pytest -q -rs -p no:cacheprovider test/test_cuda.py
step checkpoint 60 $PY -c "import sys, torch; from textdepth_ros.model import build_model; \
from textdepth_ros.model.checkpoint import save_checkpoint; torch.manual_seed(0); \
save_checkpoint(sys.argv[2], build_model(sys.argv[1], pretrained=False))" $CONFIG "$CKPT"
step node_graph 120 $PY bench/node_bench.py "${node[@]}" --json "$OUTDIR/node_graph.json"
step node_graph_lean 90 $PY bench/node_bench.py "${node[@]}" --rate 120 --no-cloud --tuned-client \
  --json "$OUTDIR/node_graph_lean.json"
step gil 60 $PY bench/gil_bench.py --compare-executors --seconds 3 --forward-ms 5.6 --json "$OUTDIR/gil.json"
NEEDS=220 step node_compile 280 $PY bench/node_bench.py "${node[@]}" --compile --compile-cache "$CACHE" --restart --profile \
  --start-timeout $(( 240 * SCALE )) --json "$OUTDIR/node_compile.json"
NEEDS=90 step model_compile 90 $PY bench/model_speed.py "${common[@]}" --repeats $REPEATS --profile --compile-cache "$CACHE" \
  --modes fp16,compile_graph_fp16 --json "$OUTDIR/model_paper_compile.json"
END=$(( END + 20 ))
step summary 20 $PY bench/gpu_summary.py "$OUTDIR"
rm -rf "$CACHE" "$CKPT"
echo "done: $OUTDIR" | tee -a "$LOG"
