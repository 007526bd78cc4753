"""The package as a ROS user meets it: built with `colcon build`, started with the real
`ros2 launch textdepth_ros depth.launch.py` and `ros2 run`, inspected with `ros2 param`
and `ros2 node`, fed a 640x480 frame from a default-settings reliable publisher (as a
camera driver is), stopped with Ctrl-C to the whole process group; under launch, Ctrl-C
again and again until the node is gone: launch must report it "finished cleanly" (it
died of launch's own SIGINT, exit -2, or of SIGABRT, exit -6, before).

One colcon build per session (the `ros2_install` fixture); skipped where ROS 2's
launch/CLI wheels are absent (see test/ros2_workspace.py)."""
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml
from rclpy.qos import QoSProfile, ReliabilityPolicy

from launch_helpers import (H, LATCHED_TEXT, NON_DEFAULT, OUTPUTS, REMAPS, TEXT_OVERRIDE, USERS_MODEL, W,
                            assert_clean_exit, assert_node_finished_cleanly, ctrl_c, ctrl_c_again_and_again,
                            params_file, serve_one_frame, start)
from ros2_workspace import environment, ros2, ros2_discovering
from ros_helpers import Client, sample_image
from test_params_file import get_parameters
from textdepth_ros.ros.conversions import image_to_numpy
from textdepth_ros.ros.depth_node import PARAMETERS
from textdepth_ros.ros.input_qos import CHECK_PERIOD_S, STALL_S

pytestmark = pytest.mark.timeout(240)


def text_published_before(install, text: str) -> subprocess.Popen:
    """The README's way to give the scene text, started before the node: `ros2 topic pub
    --once` transient local (not waiting for a subscriber; it keeps the publisher)."""
    return subprocess.Popen(["ros2", "topic", "pub", "--once", "-w", "0", "--keep-alive", "600",
                             "--qos-durability", "transient_local", REMAPS["text"], "std_msgs/String",
                             f"data: '{text}'"], env=environment(install), stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_launch_file_arguments_match_the_readme(ros2_install):
    result = ros2(ros2_install, "launch", "textdepth_ros", "depth.launch.py", "--show-args")
    assert result.returncode == 0, result.stderr
    shown = re.findall(r"^\s+'(\w+)':", result.stdout, re.MULTILINE)
    readme = (ros2_install.parent / "src" / "textdepth_ros" / "README.md").read_text()
    paragraph = re.search(r"Launch arguments: (.*?)\n\n", readme, re.DOTALL).group(1)
    assert set(shown) <= set(re.findall(r"`(\w+)`", paragraph)), paragraph
    assert "bf16 on CPU" in result.stdout  # fp16 says what it does on each device


def test_ros2_launch_in_a_namespace_with_params_file_and_remaps(ros2_install, users_model, tmp_path):
    """`params_file:=` alone: every value of the user's file holds, the four the launch file
    once overrode (model_config, checkpoint, device, fp16) included; the checkpoint is found
    by its relative name in the install's model folder and really serves. Also: `ros2 param
    dump` shows every parameter (it printed none while QoS overrides were declared without a
    value), and the scene text published the README's way before the node started is used
    without a false "no message arrived" warning."""
    values = dict(NON_DEFAULT, **users_model)
    argv = ["ros2", "launch", "textdepth_ros", "depth.launch.py", "namespace:=robot1",
            f"params_file:={params_file(tmp_path, values={**values, **TEXT_OVERRIDE})}",
            *(f"{k}:={v}" for k, v in REMAPS.items())]
    text_pub = text_published_before(ros2_install, LATCHED_TEXT)
    proc = start(ros2_install, argv, tmp_path, "launch")
    try:
        proc.wait_for_log("ready:", 150)
        ready = time.monotonic()
        got = get_parameters("/robot1/depth_node", list(values))
        dump = ros2_discovering(ros2_install, "param", "dump", "/robot1/depth_node", done=lambda r: r.returncode == 0)
        nodes = ros2_discovering(ros2_install, "node", "list",
                                 done=lambda r: "/robot1/depth_node" in r.stdout).stdout.split()
        # The text's subscription follows its publisher within a check or two; then a stall
        # would be reported STALL_S later: let that time pass before other texts come.
        time.sleep(max(0.0, ready + STALL_S + 5 * CHECK_PERIOD_S - time.monotonic()))
        text_log = [line for line in proc.log().splitlines() if REMAPS["text"] in line or "scene text" in line]
        served = serve_one_frame("robot1", REMAPS)
    finally:
        code = ctrl_c_again_and_again(proc, "depth_node")
        os.killpg(text_pub.pid, signal.SIGINT)
        text_pub.wait(30)
    assert got == values, proc.log()
    dumped = yaml.safe_load(dump.stdout)["/robot1/depth_node"]["ros__parameters"]
    assert set(PARAMETERS) <= set(dumped), dump.stdout + dump.stderr
    assert {name: dumped[name] for name in values} == values  # read back with the ROS 2 CLI
    assert f"model: {USERS_MODEL} (full) on cpu bf16" in proc.log() and "trained checkpoint" in proc.log()
    assert dumped["qos_overrides"] == TEXT_OVERRIDE["qos_overrides"]  # the given one; unset ones are not declared
    assert f"scene text: '{LATCHED_TEXT}'" in "\n".join(text_log), proc.log()
    assert not [line for line in text_log if "no message" in line], text_log
    assert "/robot1/depth_node" in nodes
    assert {f"/robot1/{t}" for t in OUTPUTS} <= set(served["topics"])
    assert set(REMAPS.values()) <= set(served["topics"])
    depth = image_to_numpy(served["out"]["depth/image"])
    assert depth.shape == (H, W) and np.isfinite(depth).all()
    assert served["out"]["points"].height == H and served["out"]["points"].width == W
    # cloud_rgb false in the params file: x, y, z only
    assert [f.name for f in served["out"]["points"].fields] == ["x", "y", "z"]
    assert "warm-up forward 48x64" in proc.log()
    assert_clean_exit(proc, code)
    assert_node_finished_cleanly(proc, "depth_node")


def test_ros2_run_textdepth_finds_the_checkpoint_in_the_install(ros2_install, users_model, tmp_path):
    """The CLI as docs/install.md shows it, `ros2 run textdepth_ros textdepth`, run from
    another folder: a relative checkpoint name is the install's model folder's file."""
    import cv2

    image = tmp_path / "room.png"
    cv2.imwrite(str(image), sample_image(48, 64))
    result = subprocess.run(["ros2", "run", "textdepth_ros", "textdepth", "predict", "--checkpoint",
                             users_model["checkpoint"], "--image", str(image), "--out", str(tmp_path / "d.npy"),
                             "--device", "cpu"], cwd=tmp_path, env=environment(ros2_install),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "UNTRAINED" not in result.stderr
    assert np.load(tmp_path / "d.npy").shape == (48, 64)


def test_ros2_run_depth_node(ros2_install, tmp_path):
    """The installed YAML, then a user's file on top, in a namespace: both apply."""
    shipped = ros2_install / "textdepth_ros" / "share" / "textdepth_ros" / "config" / "depth.yaml"
    argv = ["ros2", "run", "textdepth_ros", "depth_node", "--ros-args", "-r", "__ns:=/run1",
            "--params-file", str(shipped), "--params-file", str(params_file(tmp_path)),
            *(a for k, v in REMAPS.items() for a in ("-r", f"{k}:={v}"))]
    proc = start(ros2_install, argv, tmp_path, "run")
    try:
        proc.wait_for_log("ready:", 150)
        values = get_parameters("/run1/depth_node", list(NON_DEFAULT))
        served = serve_one_frame("run1", REMAPS)
    finally:
        code = ctrl_c(proc)
    assert values == NON_DEFAULT
    assert "has no entry for" not in proc.log(), "the shipped YAML must apply in any namespace"
    assert image_to_numpy(served["out"]["depth/image"]).shape == (H, W)
    assert_clean_exit(proc, code)


def test_ros2_run_evaluator_node(ros2_install, tmp_path):
    """Started as documented, scores one pair, writes its results on Ctrl-C."""
    from sensor_msgs.msg import Image

    from textdepth_ros.ros.conversions import numpy_to_image

    results = tmp_path / "results.json"
    values = {"results_file": str(results), "summary_period": 0.5, "crop": "none"}
    argv = ["ros2", "run", "textdepth_ros", "evaluator_node", "--ros-args", "-r", "__ns:=/eval1",
            "--params-file", str(params_file(tmp_path, "depth_evaluator", values)),
            "-r", "depth:=/eval_in/depth", "-r", "gt_depth:=/eval_in/gt"]
    proc = start(ros2_install, argv, tmp_path, "evaluator")
    client = None
    try:
        proc.wait_for_log("scoring /eval_in/depth", 60)
        client = Client(outputs=())
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pub_pred = client.node.create_publisher(Image, "/eval_in/depth", reliable)
        pub_gt = client.node.create_publisher(Image, "/eval_in/gt", reliable)
        client.spin_until(lambda: pub_pred.get_subscription_count() and pub_gt.get_subscription_count() and all(
            s.qos_profile.reliability == ReliabilityPolicy.RELIABLE
            for t in ("/eval_in/depth", "/eval_in/gt") for s in client.node.get_subscriptions_info_by_topic(t)),
            30, "the evaluator's reliable subscriptions")
        gt_mm = np.full((H, W), 2000, np.uint16)
        for pub, msg in ((pub_gt, numpy_to_image(gt_mm, "16UC1")),
                         (pub_pred, numpy_to_image(np.full((H, W), 2.2, np.float32), "32FC1"))):
            msg.header.stamp.sec = 9
            pub.publish(msg)
        client.spin_until(lambda: "1 frames scored" in proc.log(), 30, "the evaluator's summary")
    finally:
        if client is not None:
            client.close()
        code = ctrl_c(proc)
    assert_clean_exit(proc, code)
    result = yaml.safe_load(results.read_text())
    assert result["summary"]["frames_scored"] == 1
    assert abs(result["summary"]["metrics"]["abs_rel"] - 0.1) < 1e-6
