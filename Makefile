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
# A shell that sourced /opt/ros/<distro>/setup.bash puts that distro's Python packages
# (another rclpy, built for the system Python) first on PYTHONPATH and its libraries on
# LD_LIBRARY_PATH / AMENT_PREFIX_PATH. The venv brings its own ROS 2 (rclpy from PyPI, with
# Fast DDS): its commands run without those variables (test/test_ros_sourced_shell.py).
FROM_A_ROS_SHELL := PYTHONPATH AMENT_PREFIX_PATH LD_LIBRARY_PATH CMAKE_PREFIX_PATH COLCON_PREFIX_PATH RMW_IMPLEMENTATION
SET_IN_THIS_SHELL := $(strip $(foreach v,$(FROM_A_ROS_SHELL),$(if $(value $(v)),$(v))))
ifneq ($(SET_IN_THIS_SHELL),)
$(info make: not passing $(SET_IN_THIS_SHELL) to the venv's commands (a ROS 2 distro sourced in this shell?): the venv brings its own rclpy and numpy)
endif
# ... and the PyPI rclpy's guard, so that its start-up sets LD_LIBRARY_PATH afresh
unexport $(FROM_A_ROS_SHELL) _ROS_WHEELS_BOOTSTRAP_COMPLETE
TESTS   ?= test
# One pytest-xdist worker per core of CI's two; each test file stays in one worker
# (module fixtures: one node per file), and each worker runs torch on one thread.
TEST_WORKERS ?= 2

.PHONY: venv demo demo-model test bench info clean venv-jazzy test-jazzy

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
	$(VPY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(TESTS)

# The test suite on ROS 2 Jazzy's rclpy (from PyPI) with Ubuntu 24.04's numpy, OpenCV and
# Pillow versions and the ROS workspace route's pins (docs/install.md).
JAZZY   := .venv-jazzy
JAZZY_TESTS ?= test

venv-jazzy: $(JAZZY)/.installed

$(JAZZY)/.installed: requirements-jazzy.txt requirements-ros-workspace.txt setup.py
	test -x $(JAZZY)/bin/python || $(PY) -m venv $(JAZZY)
	$(JAZZY)/bin/python -m pip install -q --upgrade pip 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(JAZZY)/bin/python -m pip install -q -r requirements-jazzy.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(JAZZY)/bin/python -m pip install -q --no-deps -e . --config-settings editable_mode=compat 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(JAZZY)/bin/python -c "import numpy, rclpy.event_handler; assert numpy.__version__ == '1.26.4', numpy.__version__"
	touch $@

test-jazzy: venv-jazzy
	$(JAZZY)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(JAZZY_TESTS)

bench: venv
	$(VPY) bench/run_all.py

info: venv
	$(VENV)/bin/textdepth info --config config/model/paper.yaml

clean:
	rm -rf out runs .pytest_cache
