#!/usr/bin/env bash
# The ROS 2 workspace route of docs/install.md, run as far as a machine without an apt
# ROS 2 allows (CI here is Debian 12: no ROS 2 packages exist for it). Not part of
# `make test` (it installs torch into a new venv: minutes, ~6 GB unless LINK_FROM is set).
#
#   test/workspace_route.sh                 # WORK=/tmp/textdepth_workspace_route
#   LINK_FROM=.venv test/workspace_route.sh # hard-link torch & co. from an existing venv
#
# Stand-ins, since Ubuntu 24.04's and ROS's apt packages cannot be installed here:
#   $WORK/distro/bin/python3            for /usr/bin/python3 (a copy of this machine's)
#   $WORK/distro/lib/python3/dist-packages  for apt's python3-numpy 1.26.4, python3-opencv
#                                        4.6.0, python3-yaml, -tqdm, -pil, -h5py, -setuptools,
#                                        python3-colcon-* (Ubuntu 24.04's versions, from PyPI)
#   $WORK/distro/lib/python3.X/site-packages + setup.bash  for /opt/ros/jazzy: Jazzy's rclpy
#                                        and messages from PyPI, launch/ros2cli from
#                                        ../shared/wheels/ros2-launch; setup.bash sets PATH,
#                                        PYTHONPATH, LD_LIBRARY_PATH, AMENT_PREFIX_PATH as
#                                        /opt/ros/jazzy/setup.bash does.
# rosdep is checked separately (it needs ros/rosdistro; see docs/install.md).
# Then the workspace is built and run exactly as docs/install.md says, and checked: numpy and
# cv2 stay the distro's, the installed executables run the venv's Python, `ros2 launch`
# starts the node with the user's params file, `ros2 run textdepth_ros textdepth` works.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/textdepth_workspace_route}
DISTRO=$WORK/distro
WS=$WORK/textdepth_ws
SYSTEM_PYTHON=${SYSTEM_PYTHON:-/usr/bin/python3}  # a distribution's Python: its stdlib in /usr/lib/python3.X
PYV=$("$SYSTEM_PYTHON" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
WHEELS=${TEXTDEPTH_ROS2_WHEELS:-$REPO/../shared/wheels/ros2-launch}
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

if [ ! -f "$DISTRO/setup.bash" ]; then
    step "stand-in for Ubuntu 24.04 + ROS 2 Jazzy in $DISTRO"
    mkdir -p "$DISTRO/bin" "$DISTRO/lib/python3/dist-packages"
    cp "$(readlink -f "$SYSTEM_PYTHON")" "$DISTRO/bin/python$PYV"
    ln -sf "python$PYV" "$DISTRO/bin/python3"
    cp -a "/usr/lib/python$PYV" "$DISTRO/lib/"
    SYS=$DISTRO/lib/python3/dist-packages ROS=$DISTRO/lib/python$PYV/site-packages
    pip_=("$REPO/.venv/bin/python" -m pip install -q --disable-pip-version-check)
    "${pip_[@]}" --target "$SYS" numpy==1.26.4 opencv-python-headless==4.6.0.66 PyYAML==6.0.1 tqdm==4.66.2 \
        pillow==10.2.0 h5py==3.10.0 setuptools==68.1.2 osrf-pycommon argcomplete psutil lark-parser \
        colcon-core colcon-ros colcon-python-setup-py colcon-bash colcon-package-selection \
        colcon-parallel-executor colcon-output colcon-library-path colcon-recursive-crawl colcon-defaults \
        2>&1 | grep -v "WARNING: Location\|dependency\|requires\|incompatible" || true
    rm -f "$SYS"/a1_coverage.pth  # the running venv's, copied by --target
    sed -n '/^ros-/p' "$REPO/test/ros_jazzy_layer.txt" > "$WORK/ros_layer.txt"
    "${pip_[@]}" --no-deps --ignore-installed --prefix "$DISTRO" -r "$WORK/ros_layer.txt" "$WHEELS"/*.whl \
        2>&1 | grep -v "WARNING: Location" || true
    cp -r "$WHEELS"/standins/* "$ROS/"
    printf '#!%s\nimport sys\nfrom ros2cli.cli import main\nsys.exit(main())\n' "$DISTRO/bin/python3" > "$DISTRO/bin/ros2"
    chmod +x "$DISTRO/bin/ros2"
    cat > "$DISTRO/setup.bash" <<EOF
export PATH=$DISTRO/bin:\$PATH
export PYTHONPATH=$ROS\${PYTHONPATH:+:\$PYTHONPATH}
export LD_LIBRARY_PATH=$(ls -d "$ROS"/ros_*.libs | tr '\n' ':')$DISTRO/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export AMENT_PREFIX_PATH=$DISTRO\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}
export ROS_DISTRO=jazzy ROS_VERSION=2 ROS_PYTHON_VERSION=3
EOF
fi

step "the workspace as docs/install.md builds it, in $WS"
rm -rf "$WS" && mkdir -p "$WS/src/textdepth_ros"
(cd "$REPO" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$WS/src/textdepth_ros" 2>/dev/null || true)
cd "$WS"
env -i HOME="$HOME" PATH=/usr/bin:/bin TERM=dumb LINK_FROM="${LINK_FROM:-}" REPO="$REPO" DISTRO="$DISTRO" PYV="$PYV" \
    ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-22}" ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_HOME="$WORK/ros_home" \
    bash -eo pipefail <<'ROUTE'
source "$DISTRO/setup.bash"
python3 -m venv --system-site-packages venv
touch venv/COLCON_IGNORE
source venv/bin/activate
if [ -n "$LINK_FROM" ]; then  # saves ~6 GB of disk: the same files pip would install
    for d in "$REPO/$LINK_FROM"/lib/python$PYV/site-packages/{torch,torch-*.dist-info,torchgen,functorch,torchvision,torchvision-*.dist-info,torchvision.libs,nvidia,nvidia_*.dist-info,triton,triton-*.dist-info}; do
        [ -e "$d" ] && cp -al "$d" venv/lib/python$PYV/site-packages/
    done
fi
pip install -q -r src/textdepth_ros/requirements-ros-workspace.txt 2>&1 | grep -v "WARNING: Location" || true
python - <<'PY'
import os, sys
import cv2, numpy, rclpy, torch, timm, open_clip
distro = os.environ["DISTRO"]
assert numpy.__version__ == "1.26.4" and numpy.__file__.startswith(distro), ("numpy is not the distro's", numpy.__file__)
assert cv2.__file__.startswith(distro), ("cv2 is not the distro's", cv2.__file__)
assert rclpy.__file__.startswith(distro), rclpy.__file__
assert torch.__file__.startswith(sys.prefix), torch.__file__
print(f"numpy {numpy.__version__} and cv2 {cv2.__version__} from the distro, rclpy from /opt/ros's stand-in, "
      f"torch {torch.__version__} from the venv")
PY
python -m colcon build 2>&1 | tail -3
source install/setup.bash
shebang=$(head -1 install/textdepth_ros/lib/textdepth_ros/depth_node)
[ "$shebang" = "#!$PWD/venv/bin/python" ] || { echo "FAILED: depth_node starts with $shebang"; exit 1; }
echo "installed executables run the venv's Python: $shebang"
ros2 run textdepth_ros textdepth --help | head -3
cat > my_params.yaml <<'EOF'
/**/depth_node:
  ros__parameters:
    model_config: tiny
    device: cpu
    default_text: "a workshop"
    warmup_height: 48
    warmup_width: 64
EOF
deactivate  # a new shell: ROS + the workspace sourced, the venv not activated
set -m
ros2 launch textdepth_ros depth.launch.py params_file:=$PWD/my_params.yaml > launch.log 2>&1 &
launch=$!
for _ in $(seq 240); do grep -q "ready:" launch.log && break; sleep 1; done
grep -q "ready:" launch.log || { cat launch.log; echo "FAILED: the node did not get ready"; exit 1; }
value=$(ros2 param get /textdepth/depth_node default_text --no-daemon --spin-time 3 || true)
kill -INT -- -$launch; wait $launch || true
cat launch.log | grep -v "^\s*$" | tail -8
echo "ros2 param get: $value"
[[ "$value" == *"a workshop"* ]] || { echo "FAILED: the params file did not apply"; exit 1; }
grep -q "process has finished cleanly" launch.log || { echo "FAILED: no clean exit"; exit 1; }
echo "ROUTE OK"
ROUTE
