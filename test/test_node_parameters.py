"""depth_node's parameters through rclpy's parameter services (what `ros2 param` uses),
against the node as a real process: run-time changes take effect, fixed ones and bad
values are refused with a reason, descriptors say what each one is, and bad values at
start-up give one clear line and a non-zero exit."""
import re
import sys
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.parameter_client import AsyncParameterClient

from ros_helpers import SMALL_PARAMS, NodeProcess, Stamps, camera_info, int_value, module_node_and_client, sample_image
from textdepth_ros.ros.conversions import image_to_numpy
from textdepth_ros.ros.depth_node import THROTTLE_S, DepthNode
from textdepth_ros.ros.input_qos import STALL_S, WARN_PERIOD_S
from textdepth_ros.ros.pointcloud import pointcloud2_to_array

H, W = 64, 80
pytestmark = pytest.mark.timeout(180)


node, client = module_node_and_client(SMALL_PARAMS)


@pytest.fixture(scope="module")
def params(client):
    remote = AsyncParameterClient(client.node, "/depth_node")
    assert remote.wait_for_services(30)
    return Remote(client, remote)


class Remote:
    """Blocking calls to the node's parameter services."""

    def __init__(self, client, remote):
        self.client, self.remote = client, remote

    def _wait(self, future):
        self.client.spin_until(future.done, 30, "the parameter service")
        return future.result()

    def set(self, name, value):
        return self._wait(self.remote.set_parameters([Parameter(name, value=value)])).results[0]

    def get(self, name):
        return parameter_value_to_python(self._wait(self.remote.get_parameters([name])).values[0])

    def describe(self, name):
        return self._wait(self.remote.describe_parameters([name])).descriptors[0]


def frame(client, topics=("depth/image",)):
    key = client.send_frame(sample_image(H, W), Stamps.take(), info=camera_info(H, W))
    return client.wait_depth(key, topics=topics)


def test_cloud_parameters_take_effect(client, params):
    out = frame(client, ("depth/image", "points"))
    depth = image_to_numpy(out["depth/image"])
    assert np.isfinite(pointcloud2_to_array(out["points"])["z"]).all()
    assert "rgb" in {f.name for f in out["points"].fields}

    cut = float(np.median(depth))
    assert params.set("max_range", cut).successful
    assert params.set("cloud_rgb", False).successful
    try:
        out = frame(client, ("depth/image", "points"))
        depth, z = image_to_numpy(out["depth/image"]), pointcloud2_to_array(out["points"])["z"]
        assert np.isnan(z[depth > cut]).all() and np.isfinite(z[depth <= cut]).all()
        assert (depth > cut).any()
        assert "rgb" not in {f.name for f in out["points"].fields}

        assert params.set("publish_cloud", False).successful
        without = frame(client)["depth/image"]
        assert params.set("publish_cloud", True).successful
        frame(client, ("depth/image", "points"))  # in-order reliable publisher: had a cloud come, it came first
        assert (without.header.stamp.sec, without.header.stamp.nanosec) not in client.received["points"]
    finally:
        params.set("max_range", 0.0)
        params.set("cloud_rgb", True)
        params.set("publish_cloud", True)


def test_default_text_and_limits_take_effect(client, params, node):
    assert params.set("default_text", "a garage with a car").successful
    client.spin_until(lambda: client.diagnostics.get("text") == "a garage with a car", 30, "the new text")

    before = int_value(client.diagnostics, "frames_too_large")
    assert params.set("max_pixels", H * W - 1).successful
    try:
        for _ in range(3):
            client.send_frame(sample_image(H, W), Stamps.take(), info=camera_info(H, W))
        client.spin_until(lambda: int_value(client.diagnostics, "frames_too_large") == before + 3, 30, "3 skips")
    finally:
        assert params.set("max_pixels", 4096 * 4096).successful
    frame(client)  # served again
    assert node.log().count("raise the max_pixels parameter") == 1, "one rate-limited line for the burst"


def test_diagnostics_period_takes_effect(client, params):
    messages = []
    client.node.create_subscription(DiagnosticArray, "/diagnostics", messages.append, 10)
    client.spin_for(1.0)
    assert len(messages) >= 2  # SMALL_PARAMS: every 0.2 s
    assert params.set("diagnostics_period", 60.0).successful
    try:
        client.spin_for(0.5)  # one may have been on its way
        messages.clear()
        client.spin_for(2.0)
        assert messages == []
    finally:
        assert params.set("diagnostics_period", 0.2).successful
    client.spin_until(lambda: len(messages) > 0, 30, "diagnostics at the restored period")


FIXED = [("model_config", "paper"), ("checkpoint", "/tmp/x.safetensors"), ("device", "cpu"), ("fp16", True),
         ("compile", True), ("warmup", False), ("warmup_height", 96), ("executor", "single")]


@pytest.mark.parametrize("name,value,reason", [
    *((name, value, "read-only") for name, value in FIXED),  # fixed at start-up
    ("max_range", -1.0, "out of range"),
    ("max_range", float("nan"), "out of range"),
    ("max_range", "far", "Wrong parameter type"),
    ("max_range", 5, "Wrong parameter type"),
    ("diagnostics_period", 0.0, "out of range"),
    ("max_pixels", 0, "out of range"),
    ("min_side", -3, "out of range"),
    ("publish_cloud", "yes", "Wrong parameter type"),
    ("default_text", "  \t ", "no usable text"),
    ("gil_switch_interval_ms", 0.0, "out of range"),
])
def test_bad_values_are_refused_with_a_reason(params, name, value, reason):
    before = params.get(name)
    result = params.set(name, value)
    assert not result.successful and reason in result.reason, result.reason
    assert params.get(name) == before


def test_descriptors_describe_each_parameter(params):
    fixed = params.describe("model_config")
    assert fixed.read_only and "fixed at start-up" in fixed.description
    live = params.describe("max_range")
    assert not live.read_only and "NaN" in live.description
    assert (live.floating_point_range[0].from_value, live.floating_point_range[0].to_value) == (0.0, 1000.0)
    assert params.describe("warmup_height").integer_range[0].from_value == 1


def test_a_flood_of_changes_logs_a_line_per_period_and_always_the_newest_value(node, params):
    """A script or a slider setting a parameter 100 times in a row gave 100 INFO lines;
    now the first comes at once, then at most one per THROTTLE_S, and the last line holds
    the newest value (as for scene texts)."""
    start = len(node.log())
    original = params.get("max_uncertainty")
    began = time.monotonic()
    for value in [round(0.01 * i, 2) for i in range(1, 100)] + [original]:
        assert params.set("max_uncertainty", value).successful
    elapsed = time.monotonic() - began
    params.client.spin_until(lambda: "changes since the last line" in node.log()[start:], 3 * THROTTLE_S,
                             "the line with the newest value")
    lines = [line for line in node.log()[start:].splitlines() if "parameters set:" in line]
    assert f"max_uncertainty={original!r} (the newest of" in lines[-1], lines
    assert len(lines) <= 2 + elapsed / THROTTLE_S, lines


def test_frames_that_stop_while_the_camera_stays_are_reported(node, client):
    """The client's camera sent frames, then stopped, its publisher still matched (a hung
    driver, a best-effort stream lost on the way): one warning, rate-limited. Before, only
    a camera that had never sent anything was reported. (The test above was silent for
    seconds: usually the warning is already there.)"""
    if not client.received["depth/image"]:  # run alone: let frames arrive first
        frame(client)
    pattern = r"/image: 1 publisher\(s\) matched .* but no message in the last \d+ s \(\d+ before"
    client.spin_until(lambda: re.search(pattern, node.log()), STALL_S + WARN_PERIOD_S + 5, "the stall warning")


@pytest.mark.parametrize("value,expected", [
    ({"max_range": -1.0}, "parameter 'max_range': Parameter max_range out of range"),
    ({"warmup_height": 8000, "warmup_width": 8000}, "the warm-up image is 8000x8000 = 64,000,000 pixels, over the limit"),
])
def test_bad_values_at_start_up_give_one_line_and_exit_non_zero(tmp_path, value, expected):
    """As a user meets them, from a params file in a real process: a bad value as the node
    declares its parameters, and one found only when it starts serving (the warm-up)."""
    proc = NodeProcess(dict(SMALL_PARAMS, **value), log_path=tmp_path / "node.log")
    try:
        code = proc.proc.wait(90)
    finally:
        proc.kill()
    log = proc.log()
    fatal = [line for line in log.splitlines() if "cannot start" in line]
    assert code != 0 and len(fatal) == 1 and expected in fatal[0], log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("value,expected", [
    ({"max_range": "far"}, "parameter 'max_range' must be a double"),
    ({"max_range": 5}, "parameter 'max_range' must be a double (write 5.0, not 5)"),
    ({"warmup_height": 0}, "parameter 'warmup_height': Parameter warmup_height out of range"),
    ({"default_text": " "}, "parameter 'default_text'"),
    ({"executor": "multi"}, "parameter 'executor'"),
])
def test_each_bad_start_up_value_is_refused_with_its_reason(value, expected):
    """The other refusals, in this process (each real process start costs seconds): the
    UserError the node's process turns into its one `cannot start` line (the test above)."""
    from textdepth_ros.errors import UserError

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        overrides = [Parameter(name, value=v) for name, v in dict(SMALL_PARAMS, **value).items()]
        with pytest.raises(UserError) as refused:
            DepthNode(context=context, parameter_overrides=overrides).destroy_node()
        assert expected in str(refused.value) and "\n" not in str(refused.value)
    finally:
        rclpy.shutdown(context=context)


def test_gil_switch_interval_applies_to_the_nodes_process():
    """Python-wide, so checked in this process: set when the node starts serving, and again
    when `ros2 param set` changes it."""
    before = sys.getswitchinterval()
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = DepthNode(context=context, parameter_overrides=[Parameter("gil_switch_interval_ms", value=2.0)])
        node.serve()
        assert sys.getswitchinterval() == pytest.approx(0.002)
        assert node.set_parameters([Parameter("gil_switch_interval_ms", value=0.25)])[0].successful
        assert sys.getswitchinterval() == pytest.approx(0.00025)
        assert not node.set_parameters([Parameter("gil_switch_interval_ms", value=0.0)])[0].successful
        assert sys.getswitchinterval() == pytest.approx(0.00025)
        assert node.stop()
        node.destroy_node()
    finally:
        sys.setswitchinterval(before)
        rclpy.try_shutdown(context=context)
