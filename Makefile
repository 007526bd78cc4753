# One venv for everything; every target creates it when missing (idempotent).
# A newcomer needs only `make demo` (the node on a generated sample) and `make test`.
SHELL   := /bin/bash
.SHELLFLAGS := -o pipefail -c
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# ROS 2 discovery on loopback only: DDS does not multicast on every interface.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export PYTHONUNBUFFERED := 1

.PHONY: venv demo demo-model test bench info clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(VPY) -m pip install -q -r requirements.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(VPY) -m pip install -q --no-deps -e . --config-settings editable_mode=compat 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(VPY) -c "import torch, timm, open_clip, rclpy, rosbags, textdepth_ros" 
	touch $(STAMP)

demo: venv
	$(VENV)/bin/textdepth demo --out out/demo

# Re-trains model/demo/rooms_micro.safetensors (committed; 46 min on 2 busy cores, 1 thread).
demo-model: venv
	$(VENV)/bin/textdepth demo-model --threads 1

test: venv
	$(VPY) -m pytest -q test

bench: venv
	$(VPY) bench/run_all.py

info: venv
	$(VENV)/bin/textdepth info --config config/model/paper.yaml

clean:
	rm -rf out runs .pytest_cache
