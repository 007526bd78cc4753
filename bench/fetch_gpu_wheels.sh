#!/usr/bin/env bash
# Fetch, as Python 3.12 x86-64 wheels into .whl/, the packages bench/gpu.sh needs that
# the GPU machine's Python lacks (see CONTRIBUTING.md, "On a CUDA machine"): open_clip_torch, ftfy,
# wcwidth, our timm pin, and the ROS 2 wheels rclpy needs (rclpy + Fast DDS + messages),
# at the versions this checkout's .venv has installed. ~48 MB. Then checks that the set
# installs (no dependency resolution, as gpu.sh does it) into a scratch folder.
# Usage (repository root, after `make venv`): bash bench/fetch_gpu_wheels.sh [DIR]
set -euo pipefail
DIR=${1:-.whl}
VPY=${VPY:-.venv/bin/python}
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# What the GPU machine's Python lacks (its torch, numpy, pyyaml, safetensors, onnx,
# onnxruntime, opencv, regex, huggingface_hub, tqdm are used as they are).
mapfile -t WANTED < <("$VPY" -m pip list --format=freeze 2>/dev/null \
  | grep -iE '^(ros-[a-z0-9-]+|open[-_]clip[-_]torch|ftfy|wcwidth|timm|lark-parser)==' | sort)
if (( ${#WANTED[@]} < 10 )); then
  echo "fetch_gpu_wheels: found only ${#WANTED[@]} packages in $VPY's environment; run 'make venv' first" >&2
  exit 2
fi
rm -rf "$DIR" && mkdir -p "$DIR"
"$VPY" -m pip download -q --no-deps "${PLATFORM[@]}" -d "$DIR" "${WANTED[@]}" 2>&1 | { grep -v "^WARNING: Location" || true; }
count=$(ls "$DIR"/*.whl | wc -l)
if (( count != ${#WANTED[@]} )); then
  echo "fetch_gpu_wheels: asked for ${#WANTED[@]} wheels, got $count" >&2
  exit 1
fi
# One version of each: two versions of one package stop the whole install there.
dupes=$(ls "$DIR" | sed -E 's/-[0-9][^-]*-.*//' | sort | uniq -d)
[[ -z "$dupes" ]] || { echo "fetch_gpu_wheels: two versions of: $dupes" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$VPY" -m pip install -q --no-index --no-deps --no-compile "${PLATFORM[@]}" --target "$scratch" "$DIR"/*.whl 2>&1 \
  | { grep -v "^WARNING: Location" || true; }
for module in open_clip ftfy wcwidth timm rclpy sensor_msgs std_msgs diagnostic_msgs builtin_interfaces; do
  if ! compgen -G "$scratch/$module" >/dev/null && ! compgen -G "$scratch/lib/python3*/site-packages/$module" >/dev/null \
     && ! find "$scratch" -maxdepth 5 -type d -name "$module" | grep -q .; then
    echo "fetch_gpu_wheels: $module missing from the installed set" >&2
    exit 1
  fi
done
echo "fetch_gpu_wheels: $count wheels ($(du -sh "$DIR" | cut -f1)) in $DIR; they install into a scratch --target"
