"""The managed (lifecycle) node as a ROS user drives it: `ros2 launch ... managed:=true`,
`ros2 lifecycle set`, launch arguments that win over the user's params file, a frame
that outlasts the lifecycle, and Ctrl-C in the terminal until the node is gone (it died
of launch's own SIGINT, exit -2, or of SIGABRT, exit -6, before). Shares the session's
colcon build with test_ros2_launch.py; skipped where ROS 2's launch/CLI wheels are absent."""
import re

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage

from launch_helpers import (H, NON_DEFAULT, REMAPS, SLOW_FRAME, USERS_MODEL, W, assert_clean_exit,
                            assert_node_finished_cleanly, ctrl_c_again_and_again, params_file, send_compressed,
                            serve_one_frame, start)
from ros2_workspace import ros2_discovering
from ros_helpers import Client, int_value
from test_params_file import get_parameters
from textdepth_ros.ros.conversions import image_to_numpy

pytestmark = pytest.mark.timeout(240)


def get_with_the_cli(install, node, names) -> dict:
    """`ros2 param get <node> <name>` for each name: its printed value."""
    values = {}
    for name in names:
        result = ros2_discovering(install, "param", "get", node, name, done=lambda r: r.returncode == 0)
        assert result.returncode == 0, result.stdout + result.stderr
        values[name] = result.stdout.strip().split(": ", 1)[-1]
    return values


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_managed_node_under_ros2_lifecycle_set(ros2_install, users_model, tmp_path):
    """launch managed:=true; configure loads the model, activate serves, deactivate stops
    (no subscription left), cleanup frees the model's memory. Then, through the lifecycle
    services: a frame that outlasts the lifecycle (many seconds in the model) is dropped
    by deactivate, its thread still inside torch, and cleanup frees the model under it;
    Ctrl-C then ends the process cleanly (it was SIGABRT, exit -6).
    The user's params file as above, and two launch arguments GIVEN: they win over the file
    (fp16:=false; transport:=compressed, which must really subscribe <image>/compressed),
    while the file's other values hold."""
    node = "/managed/depth_node"
    values = dict(NON_DEFAULT, min_side=1, **users_model)  # fp16: true, transport: raw
    argv = ["ros2", "launch", "textdepth_ros", "depth.launch.py", "namespace:=managed", "managed:=true",
            f"params_file:={params_file(tmp_path, values=values)}", "fp16:=false", "transport:=compressed",
            *(f"{k}:={v}" for k, v in REMAPS.items())]
    proc = start(ros2_install, argv, tmp_path, "managed")

    def lifecycle(*args):
        result = ros2_discovering(ros2_install, "lifecycle", *args, done=lambda r: "Node not found" not in r.stdout + r.stderr)
        assert result.returncode == 0, result.stdout + result.stderr + proc.log_tail()
        return result.stdout

    client = None
    try:
        proc.wait_for_log("unconfigured: waiting for the configure transition", 120)
        pid = int(re.search(r"managed_depth_node-1\]: process started with pid \[(\d+)\]", proc.log()).group(1))
        assert "unconfigured" in lifecycle("get", node)
        given = get_parameters(node, ["fp16", "transport", "checkpoint", "device"])
        cli = get_with_the_cli(ros2_install, node, ["fp16"])
        rss_unconfigured = rss_mb(pid)
        assert "Transitioning successful" in lifecycle("set", node, "configure")
        assert f"model: {USERS_MODEL} (full) on cpu fp32" in proc.log() and "trained checkpoint" in proc.log()
        rss_configured = rss_mb(pid)
        lifecycle("set", node, "activate")
        served = serve_one_frame("managed", REMAPS, compressed=True)
        assert image_to_numpy(served["out"]["depth/image"]).shape == (H, W)
        assert served["readers"] == {REMAPS["image"]: set(),
                                     REMAPS["image"] + "/compressed": {("depth_node", "sensor_msgs/msg/CompressedImage")}}
        lifecycle("set", node, "deactivate")
        client = Client(namespace="managed", inputs=REMAPS, outputs=("depth/image",))
        compressed_pub = client.node.create_publisher(CompressedImage, REMAPS["image"] + "/compressed",
                                                      QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        client.spin_until(lambda: compressed_pub.get_subscription_count() == 0, 30, "the image subscription to go")
        lifecycle("set", node, "cleanup")
        assert "model released" in proc.log()
        rss_cleaned = rss_mb(pid)
        client.change_state(node, "configure")  # a transition only an unconfigured node takes
        client.change_state(node, "activate")
        client.diagnostics = {}
        client.spin_until(lambda: client.diagnostics and compressed_pub.get_subscription_count(), 30, "serving")
        received = int_value(client.diagnostics, "frames_received")
        send_compressed(client, compressed_pub, np.zeros((*SLOW_FRAME, 3), np.uint8), 9_000_000_000, codec="png")
        client.spin_until(lambda: int_value(client.diagnostics, "frames_received") > received, 60, "the slow frame")
        client.spin_for(1.0)  # the worker has taken it and is inside the forward pass
        client.change_state(node, "deactivate")
        client.change_state(node, "cleanup")
    finally:
        if client is not None:
            client.close()
        code = ctrl_c_again_and_again(proc, "managed_depth_node")
    assert given == {"fp16": False, "transport": "compressed", "checkpoint": users_model["checkpoint"], "device": "cpu"}
    assert cli == {"fp16": "False"}, cli  # `ros2 param get`: the launch argument won over the file's true
    print(f"managed node RSS: unconfigured {rss_unconfigured:.0f} MB, configured {rss_configured:.0f} MB, "
          f"after cleanup {rss_cleaned:.0f} MB")
    # configure imports torch too (~600 MB of libraries that stay); the tiny model's weights
    # alone are ~150 MB of float32, and cleanup must give them back
    assert rss_configured - rss_unconfigured > 150
    # measured: 116 MB less idle, 73 MB less with the machine busy (without malloc_trim: 94 MB more)
    assert rss_cleaned < rss_configured - 50
    assert_clean_exit(proc, code)
    assert "dropped the frame in progress" in proc.log()
    assert_node_finished_cleanly(proc, "managed_depth_node")


def test_a_second_ctrl_c_during_teardown_is_ignored(tmp_path):
    """What the launch tests caught: Ctrl-C in a terminal reaches a launched node twice
    (the process group's SIGINT, then the one `ros2 launch` forwards); the second landed
    inside destroy_node as a KeyboardInterrupt traceback, exit -2. No ROS tools needed."""
    import os
    import signal
    import time

    from ros_helpers import SMALL_PARAMS, NodeProcess as DepthNodeProcess

    proc = DepthNodeProcess(SMALL_PARAMS, log_path=tmp_path / "node.log")
    try:
        proc.wait_ready()
        os.kill(proc.pid, signal.SIGINT)
        time.sleep(0.05)  # the teardown (worker join, destroy) takes longer than this
        os.kill(proc.pid, signal.SIGINT)
        code = proc.proc.wait(30)
    finally:
        proc.kill()
    assert_clean_exit(proc, code)
