#!/usr/bin/env bash
# GPU benchmarks, one run on a CUDA machine (see README "Performance"):
#   paper config at 480x640: FPS for fp32, fp16 autocast, channels_last, torch.compile,
#   peak memory; the node's end-to-end FPS/latency; a training-step throughput; the
#   CUDA tests. Uses that machine's python3 (with torch); packages it lacks can be put
#   as wheels in .whl/ (open_clip, timm, ROS 2 wheels: see README).
# Usage: bash bench/gpu.sh [OUTDIR]      each step has its own time limit.
set -u
OUTDIR=${1:-${OUT:-out/bench_gpu}}
mkdir -p "$OUTDIR"
PY=${PYTHON:-python3}
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
step() { local limit=$1; shift; echo "=== $* (limit ${limit}s)"; timeout "$limit" "$@" 2>&1 | tee -a "$OUTDIR/gpu.log"; echo "=== exit ${PIPESTATUS[0]}"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUTDIR/gpu.log"
$PY -c "import torch, timm, open_clip; print('torch', torch.__version__, 'timm', timm.__version__, 'open_clip', open_clip.__version__)" | tee -a "$OUTDIR/gpu.log"
step 150 $PY bench/model_speed.py --config paper --device cuda --repeats 30 --modes fp32,fp16,channels_last_fp16 --json "$OUTDIR/paper_eager.json"
step 60 $PY bench/model_speed.py --config tiny --device cuda --repeats 30 --modes fp32,fp16 --json "$OUTDIR/tiny.json"
step 120 $PY -m pytest -q -p no:cacheprovider test/test_cuda.py
if [ -f bench/node_bench.py ]; then
  step 180 $PY bench/node_bench.py --config paper --device cuda --fp16 --json "$OUTDIR/node_paper.json"
fi
if [ -f bench/train_speed.py ]; then
  step 150 $PY bench/train_speed.py --config paper --device cuda --json "$OUTDIR/train_paper.json"
fi
step 240 $PY bench/model_speed.py --config paper --device cuda --repeats 30 --modes compile_fp16 --json "$OUTDIR/paper_compile.json"
echo "done: $OUTDIR"
