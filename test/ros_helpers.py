"""Helpers for tests that talk to a real depth_node over real DDS.

`NodeProcess` runs the node as a separate process (the way users run it) and cleans
the Fast DDS shared-memory files that process leaves; `Client` is an in-process rclpy
node that publishes camera-like input and collects every output by stamp.
"""
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String

from textdepth_ros.ros import node_process
from textdepth_ros.ros.conversions import numpy_to_image
from textdepth_ros.ros.depth_node import text_qos
from textdepth_ros.ros.diagnostics import diagnostic_values

REPO = Path(__file__).resolve().parent.parent
NODE_EXE = Path(sys.executable).parent / "depth_node"  # the running venv's (.venv, or .venv-jazzy)
MANAGED_NODE_EXE = Path(sys.executable).parent / "managed_depth_node"
SMALL_PARAMS = {"model_config": "tiny", "warmup_height": 96, "warmup_width": 128, "diagnostics_period": 0.2}


def default_executor() -> str:
    """The executor `executor: auto` should give with this rclpy (found independently of
    make_executor, which the tests check against it)."""
    try:
        from rclpy.experimental import EventsExecutor  # noqa: F401
    except ImportError:
        return "SingleThreadedExecutor"
    return "EventsExecutor"


# -- the node as a process -------------------------------------------------------------
class NodeProcess(node_process.NodeProcess):
    """depth_node started through its console script, the way `ros2 run` starts it."""

    def __init__(self, params: dict = None, params_file=None, args=(), log_path=None, namespace=None, remaps=None,
                 new_session: bool = False, env: dict = None, managed: bool = False):
        ros_args = node_process.depth_node_argv(params, params_file, namespace, remaps)[3:]  # from --ros-args on
        exe = MANAGED_NODE_EXE if managed else NODE_EXE
        super().__init__([str(exe), *args, *ros_args], log_path, new_session=new_session, env=env)

    def wait_ready(self, timeout: float = 90.0) -> None:
        self.wait_for_log(node_process.READY_LINE, timeout)

    def kill(self) -> None:
        self.stop(timeout=0)


@contextmanager
def serving_node(params: dict = None, **node_process_args):
    """A ready node for a test module; on leaving, it must shut down cleanly (exit code 0
    on SIGINT, no traceback), and its shared-memory segments are removed.
    `node_process_args`: NodeProcess's other arguments (params_file, namespace, ...)."""
    proc = NodeProcess(params, **node_process_args)
    try:
        proc.wait_ready()
        yield proc
    finally:
        try:
            assert proc.interrupt() == 0, proc.log()
            assert "Traceback" not in proc.log(), proc.log()
        finally:
            proc.cleanup()


def module_node_and_client(params: dict):
    """Module-scoped fixtures `node` (a serving node with `params`) and `client` (connected
    to it): one node serves the whole module, since start-up costs seconds.
    Use as `node, client = module_node_and_client({...})`."""
    @pytest.fixture(scope="module", name="node")
    def node_fixture():
        with serving_node(params) as proc:
            yield proc

    @pytest.fixture(scope="module", name="client")
    def client_fixture(node):
        with connected_client() as c:
            yield c

    return node_fixture, client_fixture


@contextmanager
def connected_client(**client_kwargs):
    """A Client that has discovered the node's topics."""
    client = Client(**client_kwargs)
    try:
        client.wait_connected()
        yield client
    finally:
        client.close()


# -- the test side ---------------------------------------------------------------------
def camera_info(height: int, width: int, f: float = None, stamp=None, frame_id="camera_optical") -> CameraInfo:
    f = f if f is not None else 0.8 * width
    info = CameraInfo()
    info.header.frame_id = frame_id
    if stamp is not None:
        info.header.stamp = stamp
    info.height, info.width = height, width
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [f, 0.0, width / 2 - 0.5, 0.0, f, height / 2 - 0.5, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, width / 2 - 0.5, 0.0, 0.0, f, height / 2 - 0.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def sample_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour pattern with some structure (untrained models still react to it)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), np.full_like(xx, 128)], -1)
    return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


class Client:
    """In-process rclpy node on the other side of the topics."""

    OUTPUTS = {"depth/image": Image, "depth/camera_info": CameraInfo, "depth/uncertainty": Image,
               "points": PointCloud2, "depth/preview": Image}

    def __init__(self, name="textdepth_test_client", namespace="", outputs=None, inputs=None, image_qos=None):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        inputs = dict({"image": "image", "camera_info": "camera_info", "text": "text"}, **(inputs or {}))
        # Best effort by default (small test images); `image_qos` (reliable, as drivers publish)
        # for camera-sized ones applies to camera_info too.
        self.pub_image = self.node.create_publisher(Image, inputs["image"], image_qos or qos_profile_sensor_data)
        self.pub_info = self.node.create_publisher(CameraInfo, inputs["camera_info"], image_qos or qos_profile_sensor_data)
        self.pub_text = self.node.create_publisher(String, inputs["text"], text_qos())
        self.received = {topic: {} for topic in (outputs or self.OUTPUTS)}
        self.arrivals = []  # (monotonic time, stamp key) of depth messages
        for topic in self.received:
            self.node.create_subscription(self.OUTPUTS[topic], topic, self._collector(topic), 10)
        self.diagnostics = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _collector(self, topic):
        def collect(msg):
            key = stamp_key(msg.header.stamp)
            self.received[topic][key] = msg
            if topic == "depth/image":
                self.arrivals.append((time.monotonic(), key))
        return collect

    def _on_diagnostics(self, msg):
        values = diagnostic_values(msg)
        if values:
            self.diagnostics = values

    def spin_until(self, condition, timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            self.executor.spin_once(timeout_sec=0.05)
        if not condition():
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}; diagnostics={self.diagnostics}")

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)

    def wait_reliable_image_subscription(self, timeout: float = 30.0) -> None:
        """Until the node's image and camera_info subscriptions have followed our reliable publishers."""
        self.wait_reliable(self.pub_image, self.pub_info, timeout=timeout)

    def wait_reliable(self, *publishers, timeout: float = 30.0) -> None:
        """Until the node's subscriptions to these reliable publishers' topics are reliable too
        (a subscription starts best effort and follows its publishers: a multi-MB sample sent
        before it has followed may be lost on the way)."""
        from rclpy.qos import ReliabilityPolicy

        def followed(pub):
            return pub.get_subscription_count() > 0 and all(
                s.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                for s in self.node.get_subscriptions_info_by_topic(pub.topic_name))

        self.spin_until(lambda: all(followed(pub) for pub in publishers), timeout,
                        "reliable subscriptions to " + ", ".join(pub.topic_name for pub in publishers))

    def wait_connected(self, node_proc=None, timeout: float = 60.0) -> None:
        """Until the node's subscriptions and our subscriptions have matched."""
        self.spin_until(lambda: self.pub_image.get_subscription_count() > 0
                        and self.pub_text.get_subscription_count() > 0
                        and self.node.count_publishers("depth/image") > 0
                        and bool(self.diagnostics), timeout, "the node to connect")

    def send_text(self, text: str, wait: bool = True, timeout: float = 30.0) -> None:
        self.pub_text.publish(String(data=text))
        if wait:
            self.spin_until(lambda: self.diagnostics.get("text") == text, timeout, f"text '{text[:40]}'")

    def send_frame(self, rgb: np.ndarray, stamp_ns: int, encoding="rgb8", info: CameraInfo = None,
                   frame_id="camera_optical") -> tuple:
        msg = numpy_to_image(rgb, encoding)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = frame_id
        if info is not None:
            info.header = msg.header
            self.pub_info.publish(info)
        self.pub_image.publish(msg)
        return stamp_key(msg.header.stamp)

    def wait_depth(self, key, timeout: float = 60.0, topics=("depth/image",)) -> dict:
        self.spin_until(lambda: all(key in self.received[t] for t in topics), timeout, f"outputs {topics} of {key}")
        return {t: self.received[t][key] for t in topics}

    def change_state(self, node: str, transition: str, timeout: float = 60.0) -> None:
        """A lifecycle transition (`configure`, `activate`, ...) of `node` through its
        change_state service, as a lifecycle manager calls it; it must succeed."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        service = self.node.create_client(ChangeState, f"{node}/change_state")
        try:
            self.spin_until(service.service_is_ready, timeout, f"{node}/change_state")
            transition_id = getattr(Transition, f"TRANSITION_{transition.upper()}")
            future = service.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
            self.spin_until(future.done, timeout, f"the {transition} transition")
            assert future.result().success, f"{transition} failed"
        finally:
            self.node.destroy_client(service)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


class Stamps:
    """Unique, increasing header stamps for a test session's frames (one second apart)."""
    next_ns = 1_000_000_000

    @classmethod
    def take(cls) -> int:
        cls.next_ns += 1_000_000_000
        return cls.next_ns


def stamp_key(stamp) -> tuple:
    return (int(stamp.sec), int(stamp.nanosec))


def int_value(diagnostics: dict, key: str) -> int:
    return int(diagnostics.get(key, "0"))
