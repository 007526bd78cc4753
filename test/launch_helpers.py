"""What the tests of the installed package (colcon build, `ros2 launch`, `ros2 run`) share:
the user's values, starting a command in its own process group as a terminal does,
Ctrl-C to it, and one 640x480 frame served through the launched node."""
import os
import re
import signal
import subprocess
import time

import yaml
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage

from ros2_workspace import environment
from ros_helpers import Client, camera_info, sample_image
from textdepth_ros.ros.compressed import encode_color
from textdepth_ros.ros.node_process import NodeProcess

H, W = 480, 640
REMAPS = {"image": "/launch_cam/color/image_raw", "camera_info": "/launch_cam/color/camera_info",
          "text": "/launch_scene_text"}
NON_DEFAULT = {"default_text": "a loading dock", "max_range": 7.5, "cloud_rgb": False, "warmup_height": 48,
               "warmup_width": 64, "diagnostics_period": 0.25}
OUTPUTS = {"depth/image", "depth/camera_info", "depth/uncertainty", "points", "depth/preview"}
FRAMES = 5
LATCHED_TEXT = "a loading dock seen before the node started"
TEXT_OVERRIDE = {"qos_overrides": {REMAPS["text"]: {"subscription": {"depth": 1}}}}  # one given, the rest not
SLOW_FRAME = (1, 100_000)  # the tiny model pads it to 32x100000: many seconds of CPU (test_node_shutdown.py)
USERS_MODEL = "users_model"  # the model config name inside the user's checkpoint: the log names it


def params_file(tmp_path, node="depth_node", values=None):
    path = tmp_path / f"{node}_params.yaml"
    path.write_text(yaml.safe_dump({f"/**/{node}": {"ros__parameters": values or NON_DEFAULT}}))
    return path


def start(install, argv, tmp_path, name):
    """`argv` in its own process group (a terminal's Ctrl-C reaches the whole group)."""
    env = {**environment(install), "FASTDDS_DEFAULT_PROFILES_FILE": None}  # the node chooses, as for a user
    return NodeProcess(argv, tmp_path / f"{name}.log", new_session=True, env=env)


def ctrl_c(proc) -> int:
    try:
        return proc.interrupt(timeout=30)
    finally:
        proc.cleanup()


def assert_clean_exit(proc, code):
    assert code == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


def launched_pid(proc, name: str) -> int:
    return int(re.search(rf"\[{name}-1\]: process started with pid \[(\d+)\]", proc.log()).group(1))


def ctrl_c_again_and_again(proc, name: str) -> int:
    """Ctrl-C in the terminal (SIGINT to the whole group: the node gets it, and launch
    forwards its own), then Ctrl-C again every 0.2 s, to the node (launch ignores its
    later ones), until launch says how the node ended. Returns launch's exit code."""
    pid = launched_pid(proc, name)
    try:
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while f"[pid {pid}" not in proc.log().split("process started with pid")[-1] and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        return proc.proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.stop(timeout=0)
        raise
    finally:
        proc.cleanup()


def assert_node_finished_cleanly(proc, name: str):
    pid = launched_pid(proc, name)
    assert f"process has finished cleanly [pid {pid}]" in proc.log(), proc.log_tail(30)


def serve_one_frame(namespace: str, remaps: dict, compressed: bool = False) -> dict:
    """A reliable 640x480 rgb8 frame (a JPEG on <image>/compressed with `compressed`) +
    camera_info + text in; every output back."""
    client = Client(namespace=namespace, inputs=remaps, outputs=tuple(OUTPUTS),
                    image_qos=QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    try:
        if compressed:
            image_pub = client.node.create_publisher(CompressedImage, remaps["image"] + "/compressed",
                                                     QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
            client.spin_until(lambda: image_pub.get_subscription_count() > 0 and client.pub_text.get_subscription_count()
                              and client.node.count_publishers("depth/image") > 0, 60, "the node's compressed input")
        else:
            client.wait_connected()
            client.wait_reliable_image_subscription()
        client.send_text("a loading dock with pallets")
        # Frames as a camera streams them, each with its camera_info: a frame may be served
        # before its camera_info arrives (separate topics, no order between them), so the
        # first ones may come without points; every output must come within a few frames.
        for i in range(FRAMES):
            stamp = (41 + i) * 1_000_000_000
            if compressed:
                key = send_compressed(client, image_pub, sample_image(H, W), stamp)
            else:
                key = client.send_frame(sample_image(H, W), stamp, info=camera_info(H, W))
            client.wait_depth(key, timeout=90)
            client.spin_for(0.5)  # its companions (camera_info, cloud, preview) follow the depth
            if all(key in client.received[t] for t in OUTPUTS):
                break
        out = client.wait_depth(key, timeout=10, topics=tuple(OUTPUTS))
        topics = {name: types for name, types in client.node.get_topic_names_and_types()}
        readers = {t: {(r.node_name, r.topic_type) for r in client.node.get_subscriptions_info_by_topic(t)}
                   for t in (remaps["image"], remaps["image"] + "/compressed")}
        return {"out": out, "topics": topics, "readers": readers}
    finally:
        client.close()


def send_compressed(client, publisher, rgb, stamp_ns, codec="jpeg") -> tuple:
    """`rgb` as image_transport's compressed publisher sends it, with its camera_info."""
    msg = CompressedImage()
    msg.format, data = encode_color(rgb, codec)
    msg.data = data
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = "camera_optical"
    info = camera_info(*rgb.shape[:2])
    info.header = msg.header
    client.pub_info.publish(info)
    publisher.publish(msg)
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)
