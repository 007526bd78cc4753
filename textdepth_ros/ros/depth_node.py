"""`depth_node`: RGB image + scene text in, metric depth + point cloud out.

Threads: the executor thread (one SingleThreadedExecutor, spun with spin_once so
SIGINT is never missed) runs callbacks that only store the newest frame, camera
info or text; one worker thread runs the model on the newest frame and publishes.
Frames replaced before the worker got to them are dropped and counted.
"""
import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String

from textdepth_ros.errors import UserError
from textdepth_ros.preview import colorize_depth
from textdepth_ros.ros.compressed import any_to_rgb8
from textdepth_ros.ros.conversions import numpy_to_image
from textdepth_ros.ros.diagnostics import NodeStats, diagnostic_array
from textdepth_ros.ros.fastdds_profile import use_shm_profile
from textdepth_ros.ros.frame_slot import LatestSlot
from textdepth_ros.ros.input_qos import subscribe_inputs
from textdepth_ros.ros.params_file import warn_unmatched
from textdepth_ros.ros.pointcloud import (depth_to_pointcloud2, invalid_to_nan, nan_is_the_only_invalid,
                                          valid_intrinsics)
from textdepth_ros.ros.text_input import clean_text
from textdepth_ros.ros.spinning import run_until_shutdown

NODE_NAME = "depth_node"
THROTTLE_S = 5.0  # at most one line per kind of bad input every few seconds

# name -> (default, description); the README table documents the same list.
PARAMETERS = {
    "model_config": ("tiny", "model config name (config/model/<name>.yaml) or a YAML path"),
    "checkpoint": ("", "trained checkpoint file; empty runs untrained (random) weights"),
    "device": ("auto", "auto, cpu, cuda or cuda:N (CUDA absent: CPU with one warning)"),
    "fp16": (False, "half precision autocast (fp16 on CUDA, bf16 on CPU)"),
    "compile": (False, "torch.compile the network (GPU: much less launch overhead; first frame of a size compiles)"),
    "default_text": ("an indoor scene", "scene description used until one arrives on `text`"),
    "transport": ("raw", "raw: sensor_msgs/Image on `image`; compressed: sensor_msgs/CompressedImage (jpeg, png) "
                         "on `image`/compressed, as image_transport names it"),
    "publish_cloud": (True, "publish `points`"),
    "cloud_rgb": (True, "XYZRGB cloud (colour from the input image) instead of XYZ"),
    "max_range": (0.0, "cloud points farther than this (m) become NaN; 0 = no limit"),
    "max_uncertainty": (0.0, "cloud points with uncertainty above this (m) become NaN; 0 = off"),
    "warmup": (True, "run one forward pass at start-up"),
    "warmup_height": (480, "warm-up image height"),
    "warmup_width": (640, "warm-up image width"),
    "diagnostics_period": (1.0, "seconds between /diagnostics messages"),
}


def text_qos() -> QoSProfile:
    """What a text publisher should offer: reliable + transient local, so a node started
    late still gets the last description (the node's subscription follows its publishers)."""
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def scaled_camera_info(info: CameraInfo, header, height: int, width: int) -> CameraInfo:
    """The camera's intrinsics for an image of height x width (scaled if sizes differ)."""
    sx = width / info.width if info.width else 1.0
    sy = height / info.height if info.height else 1.0
    out = CameraInfo()
    out.header = header
    out.height, out.width = height, width
    out.distortion_model = info.distortion_model
    out.d = list(info.d)
    out.r = list(info.r)
    k = np.array(info.k, dtype=np.float64)
    k[[0, 2]] *= sx
    k[[4, 5]] *= sy
    out.k = k.tolist()
    p = np.array(info.p, dtype=np.float64)
    p[[0, 2, 3]] *= sx
    p[[5, 6]] *= sy
    out.p = p.tolist()
    return out


class DepthNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self.params = {name: self.declare_parameter(name, default).value for name, (default, _) in PARAMETERS.items()}
        self.estimator = None
        self.stats = NodeStats()
        self.slot = LatestSlot()
        self._camera_info = None
        self._text = self.params["default_text"]
        self._stop = threading.Event()
        self._worker = None
        self._tokenizer = None
        self._last_warned = {}

        self.pub_depth = self.create_publisher(Image, "depth", 10)
        self.pub_info = self.create_publisher(CameraInfo, "depth/camera_info", 10)
        self.pub_uncertainty = self.create_publisher(Image, "depth/uncertainty", 10)
        self.pub_points = self.create_publisher(PointCloud2, "points", 10)
        self.pub_preview = self.create_publisher(Image, "depth/preview", 10)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    # -- start / stop ---------------------------------------------------------------
    def start(self) -> None:
        """Load the model (UserError on a bad checkpoint/config), warm up, subscribe."""
        self.load_model()
        self.serve()

    def load_model(self) -> None:
        """Build the estimator and warm it up (the managed node's `configure`)."""
        from textdepth_ros.inference import DepthEstimator  # torch loads only here

        p = self.params
        self.estimator = DepthEstimator(p["model_config"], p["checkpoint"] or None, p["device"], bool(p["fp16"]),
                                        compile=bool(p["compile"]))
        encoder = getattr(self.estimator.model, "text_encoder", None)
        self._tokenizer = getattr(encoder, "tokenizer", None)
        self._context_length = getattr(encoder, "context_length", 77)
        self._text = self._clean(p["default_text"]) or "an indoor scene"
        if self.estimator.device_warning:
            self.get_logger().warning(self.estimator.device_warning)
        self.get_logger().info(f"model: {self.estimator.describe()}")
        if self.estimator.untrained:
            self.get_logger().warning("UNTRAINED weights (no checkpoint): the depth is not meaningful; "
                                   "set the `checkpoint` parameter to a trained model")
        if p["warmup"]:
            ms = self.estimator.warmup(int(p["warmup_height"]), int(p["warmup_width"]), self._text)
            self.get_logger().info(f"warm-up forward {int(p['warmup_height'])}x{int(p['warmup_width'])}: {ms:.0f} ms")

    def serve(self) -> None:
        """Subscribe, publish diagnostics, start the worker (the managed node's `activate`)."""
        self._stop.clear()
        self.slot = LatestSlot()
        self.inputs = subscribe_inputs(self)
        self._diagnostics_timer = self.create_timer(max(float(self.params["diagnostics_period"]), 0.05),
                                                    self.publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name="depth_inference", daemon=True)
        self._worker.start()
        self.get_logger().info("ready: waiting for images on " + self.inputs[0].topic)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker: the frame in progress finishes, newer ones are not taken."""
        self._stop.set()
        self.slot.close()
        if self._worker is not None:
            self._worker.join(timeout)

    @property
    def current_text(self) -> str:
        return self._text

    # -- callbacks (executor thread): store and return --------------------------------
    def slot_image(self, msg: Image) -> None:
        self.slot.put((msg, time.monotonic()))

    def on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def on_text(self, msg: String) -> None:
        text = self._clean(msg.data)
        if text is not None and text != self._text:
            self._text = text
            self.get_logger().info(f"scene text: '{text[:120]}'")

    def _clean(self, raw):
        text, notes = clean_text(raw, self._tokenizer, self._context_length if self._tokenizer else 77)
        for note in notes:
            self._warn_limited(note, note)
        return text

    def _warn_limited(self, kind: str, message: str) -> None:
        """At most one line per kind every THROTTLE_S (rclpy throttles per call site,
        which would let one kind of bad text hide another)."""
        now = time.monotonic()
        if now - self._last_warned.get(kind, -THROTTLE_S) >= THROTTLE_S:
            self._last_warned[kind] = now
            self.get_logger().warning(message)

    # -- worker thread ----------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            item = self.slot.take(timeout=0.2)
            if item is None:
                continue
            try:
                self.process(*item)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the node
                self.stats.failed += 1
                self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}", throttle_duration_sec=THROTTLE_S)

    def process(self, msg: Image, received: float) -> None:
        try:
            rgb = any_to_rgb8(msg)  # Image or CompressedImage (transport)
        except ValueError as exc:
            self.stats.bad_frames += 1
            self.get_logger().warning(f"image skipped: {exc}", throttle_duration_sec=THROTTLE_S)
            return
        text = self._text
        pred = self.estimator.predict(rgb, text)
        depth = pred.depth.astype(np.float32, copy=False)
        if not nan_is_the_only_invalid(depth):  # two reductions; a copy only when needed
            depth = invalid_to_nan(depth)
        height, width = depth.shape
        if (height, width) != rgb.shape[:2]:
            raise RuntimeError(f"model returned {depth.shape} for a {rgb.shape[:2]} image")
        header = msg.header
        self.pub_depth.publish(numpy_to_image(depth, "32FC1", header))
        self.pub_uncertainty.publish(numpy_to_image(pred.uncertainty.astype(np.float32, copy=False), "32FC1", header))
        info = self._depth_camera_info(header, height, width)
        if info is not None:
            self.pub_info.publish(info)
            if self.params["publish_cloud"] and self.pub_points.get_subscription_count() > 0:
                self.pub_points.publish(self._cloud(depth, pred.uncertainty, info, header, rgb))
        if self.pub_preview.get_subscription_count() > 0:  # colorizing costs; skip when unwatched
            d_max = self.params["max_range"] or self.estimator.depth_limits[1]
            self.pub_preview.publish(numpy_to_image(colorize_depth(depth, 0.0, d_max), "rgb8", header))
        self.stats.record(time.monotonic() - received, pred.forward_ms, text)

    def _depth_camera_info(self, header, height, width):
        info = self._camera_info
        if info is None:
            self.get_logger().warning("no camera_info received yet: publishing depth without camera_info/points",
                                   throttle_duration_sec=THROTTLE_S * 2)
            self.stats.no_camera_info += 1
            return None
        out = scaled_camera_info(info, header, height, width)
        if not valid_intrinsics(out.k[0], out.k[4], out.k[2], out.k[5]):
            self.stats.bad_intrinsics += 1
            self.get_logger().warning(f"camera_info has unusable intrinsics K={[float(v) for v in info.k]}: no points published",
                                   throttle_duration_sec=THROTTLE_S)
            return None
        return out

    def _cloud(self, depth, uncertainty, info, header, rgb):
        """`depth` is already NaN wherever it is invalid; the range/uncertainty cuts make
        one masked copy only when they are on and cut something."""
        cut = None
        with np.errstate(invalid="ignore"):
            if self.params["max_range"] > 0:
                cut = ~(depth <= np.float32(self.params["max_range"]))
            if self.params["max_uncertainty"] > 0:
                too_uncertain = ~(uncertainty <= np.float32(self.params["max_uncertainty"]))
                cut = too_uncertain if cut is None else cut | too_uncertain
        if cut is not None and cut.any():
            depth = depth.copy()
            np.copyto(depth, np.float32(np.nan), where=cut)
        k = info.k
        return depth_to_pointcloud2(depth, (k[0], k[4], k[2], k[5]), header,
                                    rgb if self.params["cloud_rgb"] else None)

    def publish_diagnostics(self) -> None:
        stamp = self.get_clock().now().to_msg()
        self.pub_diagnostics.publish(diagnostic_array(self, stamp))


def main(args=None) -> int:
    use_shm_profile()  # before rclpy.init: Fast DDS reads it when the participant is created
    rclpy.init(args=args)
    node = DepthNode()
    warn_unmatched(node, sys.argv if args is None else args)
    try:
        node.start()
    except UserError as exc:
        node.get_logger().fatal(f"cannot start: {exc}")
        node.destroy_node()
        rclpy.try_shutdown()
        return 1
    return run_until_shutdown(node, on_stop=node.stop)


if __name__ == "__main__":
    sys.exit(main())
