"""`make test` / `make demo` in a shell where a ROS 2 distro is sourced (most ROS users
source /opt/ros/<distro>/setup.bash in .bashrc): PYTHONPATH, AMENT_PREFIX_PATH and
LD_LIBRARY_PATH then point at the distro's rclpy, libraries and packages. Here they point
at decoys that fail loudly if anything reaches them; the Makefile's command line must run
on the venv's own rclpy, numpy and Fast DDS, and say that it ignored them."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ros_helpers import REPO

PROBE = '''
import sys


def test_the_venvs_own_packages_run():
    import cv2
    import numpy
    import rclpy
    from std_msgs.msg import String

    for module in (numpy, cv2, rclpy):
        assert module.__file__.startswith(sys.prefix), module.__file__
    context = rclpy.Context()
    rclpy.init(context=context)  # loads rcl, the RMW implementation (ament index) and Fast DDS
    try:
        node = rclpy.create_node("sourced_shell_probe", context=context)
        node.create_publisher(String, "probe", 1).publish(String(data="ok"))
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
'''


def decoy_distro(root: Path) -> dict:
    """What `source /opt/ros/<distro>/setup.bash` sets, pointing at packages that refuse."""
    site = root / "lib" / f"python3.{sys.version_info.minor}" / "site-packages"
    for module in ("rclpy", "numpy", "cv2"):
        (site / module).mkdir(parents=True)
        (site / module / "__init__.py").write_text(f"raise ImportError('decoy {module} of the sourced ROS distro')\n")
    (root / "lib" / "librcutils.so").write_bytes(b"not a library")
    (root / "lib" / "librmw_fastrtps_cpp.so").write_bytes(b"not a library")
    index = root / "share" / "ament_index" / "resource_index"
    for kind, name in (("packages", "rmw_fastrtps_cpp"), ("packages", "rclpy"), ("rmw_typesupport", "rmw_fastrtps_cpp")):
        (index / kind).mkdir(parents=True, exist_ok=True)
        (index / kind / name).write_text("")
    return {"PYTHONPATH": str(site), "AMENT_PREFIX_PATH": str(root), "CMAKE_PREFIX_PATH": str(root),
            "LD_LIBRARY_PATH": f"{root / 'lib'}{os.pathsep}{os.environ.get('LD_LIBRARY_PATH', '')}",
            "ROS_DISTRO": "decoy", "ROS_VERSION": "2", "ROS_PYTHON_VERSION": "3"}


@pytest.mark.timeout(180)
def test_make_test_ignores_a_sourced_distro_and_says_so(tmp_path):
    sourced = decoy_distro(tmp_path / "opt_ros")
    probe = tmp_path / "test_probe.py"
    probe.write_text(textwrap.dedent(PROBE))
    venv = Path(sys.prefix)
    # -o: the venv exists; never rebuild it (its stamp is shared with other checkouts)
    run = subprocess.run(["make", "-s", "-o", f"{venv}/.installed", f"VENV={venv}", "test",
                          f"TESTS=-p no:cacheprovider {probe}"], cwd=REPO, env={**os.environ, **sourced},
                         capture_output=True, text=True, timeout=170)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 passed" in run.stdout
    assert "make: not passing PYTHONPATH AMENT_PREFIX_PATH LD_LIBRARY_PATH CMAKE_PREFIX_PATH" in run.stdout
