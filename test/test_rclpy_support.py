"""On an rclpy without the Iron+ APIs the node is built on (Humble's), starting the node
ends with one line that says which distros are supported, not a traceback. Each API is
hidden the way test_executor.py hides rclpy.experimental, in a fresh interpreter."""
import subprocess
import sys

import pytest

HIDE = {
    # after rclpy.node (newer rclpy imports it itself; Humble's imports rclpy.qos_event)
    "rclpy.event_handler": "import rclpy.node; sys.modules['rclpy.event_handler'] = None",
    "Node.add_post_set_parameters_callback": "import rclpy.node; del rclpy.node.Node.add_post_set_parameters_callback",
}


@pytest.mark.parametrize("api", sorted(HIDE))
def test_an_rclpy_without_an_iron_api_is_one_clear_line(api):
    code = f"import sys; {HIDE[api]}; from textdepth_ros.ros.depth_node import main; main()"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip() == (f"textdepth_ros needs ROS 2 Jazzy or newer: this rclpy lacks {api} "
                                  "(ROS 2 Humble is not supported; see docs/install.md)")
