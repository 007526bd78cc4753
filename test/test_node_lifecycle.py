"""Start-up and shutdown of the real executable: refuses bad checkpoints with one
clear line and a non-zero exit; SIGINT stops it cleanly, in bounded time, with its
shared-memory segments gone."""
import json

import pytest
import yaml

from ros_helpers import REPO, SMALL_PARAMS, Client, NodeProcess, camera_info, sample_image

pytestmark = pytest.mark.timeout(120)


def start_failure(params, tmp_path):
    proc = NodeProcess(dict(SMALL_PARAMS, **params), log_path=tmp_path / "node.log")
    try:
        code = proc.proc.wait(90)
    finally:
        proc.kill()
    return code, proc.log()


def assert_one_clear_line(log, expected):
    fatal = [line for line in log.splitlines() if "cannot start" in line]
    assert len(fatal) == 1 and expected in fatal[0], log
    assert "Traceback" not in log, log


def start_refusal_here(params) -> str:
    """What the node's start refuses `params` with, in this process (each real process start
    costs seconds): the UserError run_node turns into its one `cannot start` line."""
    import rclpy
    from rclpy.parameter import Parameter

    from textdepth_ros.errors import UserError
    from textdepth_ros.ros.depth_node import DepthNode

    context = rclpy.Context()
    rclpy.init(context=context)
    node = None
    try:
        node = DepthNode(context=context,
                         parameter_overrides=[Parameter(k, value=v) for k, v in dict(SMALL_PARAMS, **params).items()])
        with pytest.raises(UserError) as refused:
            node.start()
        assert "\n" not in str(refused.value)
        return str(refused.value)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.shutdown(context=context)


def test_missing_checkpoint_refuses_to_start(tmp_path):
    """The real executable: one line, non-zero exit. The other refusals below run in this
    process, as the node's start() meets them."""
    code, log = start_failure({"checkpoint": str(tmp_path / "nope.safetensors")}, tmp_path)
    assert code != 0
    assert_one_clear_line(log, "checkpoint not found")


def test_corrupt_checkpoint_refuses_to_start(tmp_path):
    bad = tmp_path / "garbage.safetensors"
    bad.write_bytes(b"\x00not a safetensors file" * 100)
    assert "cannot read checkpoint" in start_refusal_here({"checkpoint": str(bad)})


def test_mismatched_checkpoint_refuses_to_start(tmp_path):
    """A real textdepth checkpoint whose weights do not fit the config stored in it."""
    import torch
    from safetensors.torch import save_file

    config = yaml.safe_load((REPO / "config" / "model" / "tiny.yaml").read_text())
    path = tmp_path / "other_arch.safetensors"
    save_file({"head.weight": torch.zeros(3, 3)}, str(path),
              metadata={"format": "textdepth_ros/1", "config": json.dumps(config), "extra": "{}"})
    assert "does not fit" in start_refusal_here({"checkpoint": str(path)})


def test_sigint_stops_the_node_cleanly_while_busy(tmp_path):
    proc = NodeProcess(SMALL_PARAMS, log_path=tmp_path / "node.log")
    client = None
    try:
        proc.wait_ready()
        client = Client()
        client.wait_connected()
        key = client.send_frame(sample_image(96, 128), 5_000_000_000, info=camera_info(96, 128))
        client.wait_depth(key)
        for i in range(5):  # leave work in flight when the signal lands
            client.send_frame(sample_image(96, 128), 6_000_000_000 + i, info=camera_info(96, 128))
        code = proc.interrupt(timeout=20)  # bounded: a hang fails here
    finally:
        if client is not None:
            client.close()
        proc.kill()
    assert code == 0, proc.log()
    assert "Traceback" not in proc.log() and "[ERROR]" not in proc.log(), proc.log()
    assert proc.leftover_shm() == [], "a clean shutdown removes its own shared-memory segments"
