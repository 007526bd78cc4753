"""`depth_node`: RGB image + scene text in, metric depth + point cloud out.

Threads: the executor thread (rclpy's EventsExecutor where rclpy has it, else a
SingleThreadedExecutor: the `executor` parameter; spun with spin_once; see spinning.py
for the start/stop order) runs callbacks that only check and store the newest frame,
camera info, text or parameter change; one InferenceWorker thread runs
the model on the newest frame and hands it to a PublishQueue thread, which publishes it
while the next frame runs. Frames replaced before the worker got to them are dropped
and counted.
"""
import sys
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String

from textdepth_ros.errors import UserError
from textdepth_ros.image_limits import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, frame_size_problem
from textdepth_ros.preview import colorize_depth
from textdepth_ros.ros.auto_text import PARAMETERS as AUTO_TEXT_PARAMETERS
from textdepth_ros.ros.auto_text import AutoText
from textdepth_ros.ros.camera_info import image_camera_info
from textdepth_ros.ros.compressed import any_to_rgb8, compressed_size, is_compressed
from textdepth_ros.ros.conversions import numpy_to_image
from textdepth_ros.ros.diagnostics import NodeStats, diagnostic_array
from textdepth_ros.ros.fastdds_profile import use_shm_profile
from textdepth_ros.ros.focal_scaling import FocalScaling, check_mode, scale_to_training_camera
from textdepth_ros.ros.frame_slot import LatestSlot
from textdepth_ros.ros.inference_worker import InferenceWorker
from textdepth_ros.ros.input_qos import TRANSPORTS, subscribe_inputs
from textdepth_ros.ros.params_file import warn_unmatched
from textdepth_ros.ros.parameters import LiveParameters, Spec, set_timer_period
from textdepth_ros.ros.nav_cloud import node_cloud
from textdepth_ros.ros.pointcloud import invalid_to_nan, nan_is_the_only_invalid
from textdepth_ros.ros.publish_queue import PublishQueue
from textdepth_ros.ros.python_logging import forward_package_logging
from textdepth_ros.ros import topics
from textdepth_ros.ros.spinning import EXECUTORS, run_node
from textdepth_ros.ros.text_input import CONTEXT_LENGTH, TextChangeLog, clean_text, text_qos, usable_text  # noqa: F401

NODE_NAME = "depth_node"
THROTTLE_S = 5.0  # at most one line per kind of bad input every few seconds
STOP_GRACE_S = 3.0  # how long a stop waits for the frame inside the model before dropping it


def _usable_text(value: str):
    return None if clean_text(value)[0] else "no usable text (empty, whitespace or control characters)"


# The README's parameter table documents the same list.
PARAMETERS = {
    "model_config": Spec("tiny", "model config name (config/model/<name>.yaml) or a YAML path"),
    "checkpoint": Spec("", "trained checkpoint file; empty runs untrained (random) weights"),
    "seed": Spec(0, "untrained weights are drawn from this seed (one seed, one network)", low=0, high=2**31 - 1),
    "device": Spec("auto", "auto, cpu, cuda or cuda:N (CUDA absent: CPU with one warning)"),
    "fp16": Spec(False, "half precision (fp16 on CUDA, bf16 on CPU): autocast, with the Linear/Conv2d weights "
                 "cast once at load"),
    "compile": Spec(False, "torch.compile the network (GPU: much less launch overhead; the first frame of "
                    "each size compiles)"),
    "compile_cache_dir": Spec("", "torch.compile's on-disk cache, reused by a restart "
                              "(empty: $TORCHINDUCTOR_CACHE_DIR or ~/.cache/textdepth_ros/torch_compile)"),
    "cuda_graphs": Spec(True, "CUDA: capture the forward per input size in a CUDA graph and replay it (no-op on CPU)"),
    "cuda_graph_sizes": Spec(4, "CUDA graphs: most input sizes kept captured (least recently used dropped)",
                             low=1, high=64),
    "backend": Spec("torch", "torch, or onnxruntime (runs `onnx_model`; CUDA/TensorRT providers where installed)"),
    "onnx_model": Spec("", "backend onnxruntime: the .onnx file from `textdepth export` (same config/checkpoint)"),
    "default_text": Spec("an indoor scene", "scene description used until one arrives on `text`; setting it at run "
                         "time makes it the current description", dynamic=True, check=usable_text),
    "transport": Spec("raw", "raw: sensor_msgs/Image on `image`; compressed: sensor_msgs/CompressedImage (jpeg, "
                      "png) on `image`/compressed, as image_transport names it",
                      check=lambda v: None if v in TRANSPORTS else " or ".join(TRANSPORTS)),
    "focal_scaling": Spec("auto", "auto: depth x (camera focal / training focal, compared at the training image "
                          "size) whenever both are known (depth/camera_info's K vs the checkpoint's camera); off: the "
                          "training camera's scale as is",
                          dynamic=True, check=check_mode),
    "publish_cloud": Spec(True, "publish `points`", dynamic=True),
    "cloud_stride": Spec(1, "`points` keeps every Nth pixel in both directions (organized; each kept point exact; "
                         "4 = 16x fewer points and bytes)", dynamic=True, low=1, high=64),
    "cloud_voxel": Spec(0.0, "then one point per voxel of this size (m): unorganized, each point still an exact "
                        "pixel; 0 = off", dynamic=True, low=0.0, high=10.0,
                        check=lambda v: None if v == 0 or v >= 0.005 else "0 (off) or at least 0.005 m"),
    "cloud_rgb": Spec(True, "XYZRGB cloud (colour from the input image) instead of XYZ", dynamic=True),
    "max_range": Spec(0.0, "cloud points farther than this (m) become NaN; 0 = no limit", dynamic=True,
                      low=0.0, high=1000.0),
    "max_uncertainty": Spec(0.0, "cloud points with uncertainty above this (m) become NaN; 0 = off", dynamic=True,
                            low=0.0, high=1000.0),
    "max_pixels": Spec(DEFAULT_MAX_PIXELS, "frames with more pixels (height x width) are skipped and counted",
                       dynamic=True, low=1, high=2**31 - 1),
    "min_side": Spec(DEFAULT_MIN_SIDE, "frames with a side shorter than this (pixels) are skipped and counted; "
                     "the network's coarsest features are 1/32 of the image", dynamic=True, low=1, high=4096),
    "warmup": Spec(True, "run one forward pass at start-up"),
    "warmup_height": Spec(480, "warm-up image height (use the camera's)", low=1, high=16384),
    "warmup_width": Spec(640, "warm-up image width (use the camera's)", low=1, high=16384),
    "diagnostics_period": Spec(1.0, "seconds between /diagnostics messages", dynamic=True, low=0.05, high=3600.0),
    "gil_switch_interval_ms": Spec(0.5, "Python's thread switch interval for this process (sys.setswitchinterval; "
                                   "Python's default is 5 ms): the longest the worker waits for the GIL after a "
                                   "GPU forward while the executor or publisher thread runs Python",
                                   dynamic=True, low=0.05, high=100.0),
    "executor": Spec("auto", "auto (events where this rclpy has it), events (rclpy's EventsExecutor: waiting and "
                     "dispatch in C++, less GIL held per message) or single (SingleThreadedExecutor)",
                     check=lambda v: None if v in EXECUTORS else ", ".join(EXECUTORS)),
    **AUTO_TEXT_PARAMETERS,  # text_source and its auto_text_* (ros/auto_text.py)
}


class DepthNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        forward_package_logging(self.get_logger())
        self.params = LiveParameters(self, PARAMETERS, on_change=self._on_parameters, log_period=THROTTLE_S)
        self.estimator = None
        self.stats = NodeStats()
        self.slot = LatestSlot()  # one for the node's life: its counters feed the diagnostics
        self.worker = None  # InferenceWorker and PublishQueue: new ones each time serve() starts
        self.publisher = None
        self.inputs = []
        self._camera_info = None
        self.focal = FocalScaling(self.params["focal_scaling"], None)  # load_model adds the training camera
        self._text = self.params["default_text"]
        self._text_lock = threading.Lock()  # the executor and the auto_text thread set it
        self.auto_text = None  # AutoText with text_source auto / topic_first
        self._text_log = TextChangeLog(THROTTLE_S)
        self._tokenizer = None
        self._context_length = CONTEXT_LENGTH
        self._last_warned = {}
        self._diagnostics_timer = None
        self._change_log_timer = self.create_timer(1.0, self._log_pending_changes)  # for the node's life

        self.pub_depth = self.create_publisher(Image, topics.DEPTH, 10)
        self.pub_info = self.create_publisher(CameraInfo, topics.CAMERA_INFO, 10)
        self.pub_uncertainty = self.create_publisher(Image, topics.UNCERTAINTY, 10)
        self.pub_points = self.create_publisher(PointCloud2, topics.POINTS, 10)
        self.pub_preview = self.create_publisher(Image, topics.PREVIEW, 10)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    # -- start / stop ---------------------------------------------------------------
    def start(self) -> None:
        """Load the model (UserError on a bad checkpoint/config), warm up, serve."""
        self.load_model()
        self.serve()

    def load_model(self) -> None:
        """Build the estimator and warm it up (the managed node's `configure`)."""
        p = self.params
        warmup_size = (int(p["warmup_height"]), int(p["warmup_width"]))
        problem = frame_size_problem(*warmup_size, p, "the warm-up image") if p["warmup"] else None
        if problem:
            raise UserError(f"{problem[1]} (set warmup_height/warmup_width to the camera's size)")

        self.estimator = self._load_estimator(p)  # a CUDA fallback warns through logging
        self.focal = FocalScaling(p["focal_scaling"], self.estimator.training_camera)
        encoder = getattr(self.estimator.model, "text_encoder", None)
        self._tokenizer = getattr(encoder, "tokenizer", None)
        self._context_length = getattr(encoder, "context_length", CONTEXT_LENGTH)
        self._text = self._clean(p["default_text"]) or "an indoor scene"
        self.get_logger().info(f"model: {self.estimator.describe()}")
        if self.estimator.untrained:
            self.get_logger().warning("UNTRAINED weights (no checkpoint): the depth is not meaningful; "
                                      "set the `checkpoint` parameter to a trained model")
        self.auto_text = AutoText.load(self)  # None with text_source topic
        if p["warmup"]:
            ms = self.estimator.warmup(*warmup_size, self._text)
            self.get_logger().info(f"warm-up forward {warmup_size[0]}x{warmup_size[1]}: {ms:.0f} ms")

    def serve(self) -> None:
        """Subscribe (QoS following the publishers), time the diagnostics, start the worker
        and publisher threads (the managed node's `activate`)."""
        sys.setswitchinterval(self.params["gil_switch_interval_ms"] / 1000.0)
        if self.auto_text is not None:
            self.auto_text.start()  # before the worker: it sets its torch threads up first
        self.slot.reopen()
        self.worker = InferenceWorker(self.process, self._frame_failed, slot=self.slot)
        self.publisher = PublishQueue(self.publish_frame, self._frame_failed)
        self.inputs = subscribe_inputs(self)
        self._diagnostics_timer = self.create_timer(float(self.params["diagnostics_period"]), self.publish_diagnostics)
        self.worker.start()
        self.get_logger().info("ready: waiting for images on " + self.inputs[0].topic)

    @staticmethod
    def _load_estimator(p):
        if p["backend"] == "onnxruntime":
            from textdepth_ros.serving.onnx_runtime import OnnxDepthEstimator

            if not p["onnx_model"]:
                raise UserError("backend onnxruntime needs the `onnx_model` parameter (a file from `textdepth export`)")
            return OnnxDepthEstimator(p["onnx_model"], p["model_config"], p["checkpoint"] or None, p["device"],
                                      p["seed"])
        if p["backend"] != "torch":
            raise UserError(f"unknown backend '{p['backend']}' (torch or onnxruntime)")
        from textdepth_ros.serving.inference import DepthEstimator  # torch loads only here

        return DepthEstimator(p["model_config"], p["checkpoint"] or None, p["device"], bool(p["fp16"]),
                              compile=bool(p["compile"]), compile_cache=p["compile_cache_dir"],
                              cuda_graphs=bool(p["cuda_graphs"]), graph_sizes=int(p["cuda_graph_sizes"]),
                              seed=p["seed"])

    def stop(self, hurry=None) -> bool:
        """Take no more frames; let the frame in progress finish (up to STOP_GRACE_S, or
        until `hurry` is set), else drop it. False: a thread is still inside the model."""
        if self.auto_text is not None:  # a recognition in progress publishes nothing after this
            self.auto_text.stop(0.0 if hurry is not None and hurry.is_set() else STOP_GRACE_S)
        if self.worker is None:
            return True
        if self.worker.busy:
            self.get_logger().info(f"finishing the frame in progress (up to {STOP_GRACE_S:g} s; "
                                   "Ctrl-C again to drop it)")
        finished = self.worker.stop(STOP_GRACE_S, hurry)
        if not finished:
            self.get_logger().info("dropped the frame in progress")
        # The finished frame waiting for the publisher goes out too, unless in a hurry;
        # whatever the publisher has not sent by then is discarded at the output gate.
        published = self.publisher.close(0.0 if not finished or (hurry is not None and hurry.is_set()) else STOP_GRACE_S)
        if not published:
            self.worker.close_outputs()
        return finished

    @property
    def current_text(self) -> str:
        return self._text

    @property
    def executor_kind(self) -> str:
        """Which executor run_node spins this node on (the `executor` parameter)."""
        return self.params["executor"]

    # -- callbacks (executor thread): check, store and return ----------------------------
    def on_image(self, msg) -> None:
        # A raw frame's size is in its message: an oversize one never displaces a good
        # frame waiting in the slot. A compressed one's is in its file header (worker).
        if is_compressed(msg) or not self._skip_for_size(msg.height, msg.width):
            self.slot.put((msg, time.monotonic()))

    def _skip_for_size(self, height: int, width: int) -> bool:
        """True (counted, one warning per THROTTLE_S) if the frame is outside the limits."""
        problem = frame_size_problem(height, width, self.params)
        if problem is None:
            return False
        counter, reason = problem
        self.stats.count(counter)
        self._warn_limited(counter, f"image skipped: {reason}")
        return True

    def on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def on_text(self, msg: String) -> None:
        self._offer_text(msg.data)

    def _offer_text(self, raw) -> None:
        """`raw` becomes the current description if it is usable and new."""
        text = self._clean(raw)
        if text is not None and self.auto_text is not None:
            self.auto_text.human(text)  # in use at once (topic_first) or ignored (auto)
        elif text is not None and text != self._text:
            self.set_text(text)

    def set_text(self, text: str) -> None:
        with self._text_lock:
            self._text = text
            self.stats.count("text_updates")
            line = self._text_log.changed(text, time.monotonic())
        if line:
            self.get_logger().info(line)

    def _log_pending_changes(self) -> None:
        with self._text_lock:
            text_line = self._text_log.due(time.monotonic())
        for line in (text_line, self.params.pending_log_line()):
            if line:
                self.get_logger().info(line)

    def _on_parameters(self, changed: dict) -> None:
        """Run-time changes; the worker reads the other values per frame from self.params."""
        if "gil_switch_interval_ms" in changed:
            sys.setswitchinterval(changed["gil_switch_interval_ms"] / 1000.0)
        if "diagnostics_period" in changed and self._diagnostics_timer is not None:
            set_timer_period(self._diagnostics_timer, changed["diagnostics_period"])
        if "default_text" in changed:
            self._offer_text(changed["default_text"])

    def _clean(self, raw):
        text, notes = clean_text(raw, self._tokenizer, self._context_length)
        for note in notes:
            self._warn_limited(note, note)
        return text

    def _warn_limited(self, kind: str, message: str) -> None:
        """At most one line per kind every THROTTLE_S (rclpy throttles per call site,
        which would let one kind of bad input hide another)."""
        now = time.monotonic()
        if now - self._last_warned.get(kind, -THROTTLE_S) >= THROTTLE_S:
            self._last_warned[kind] = now
            self.get_logger().warning(message)

    # -- worker thread ----------------------------------------------------------------
    def _frame_failed(self, exc: Exception) -> None:
        self.stats.failed += 1
        self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}", throttle_duration_sec=THROTTLE_S)

    def process(self, msg, received: float) -> None:
        """Worker thread: a raw or compressed frame (a compressed one's size checked on
        its file header before any pixel is decoded), then the model."""
        try:  # a compressed frame: JPEG or PNG by content, else a ValueError (image_formats.py)
            if is_compressed(msg) and self._skip_for_size(*compressed_size(msg)):
                return
            rgb = any_to_rgb8(msg)  # Image or CompressedImage (the transport parameter)
        except ValueError as exc:
            self.stats.bad_frames += 1
            self._warn_limited("unreadable", f"image skipped: {exc}")
            return
        if self.auto_text is not None:
            self.auto_text.offer_frame(rgb)  # recognised in its own thread
        text, params = self._text, self.params.values  # one consistent set for this frame
        pred = self.estimator.predict(rgb, text)
        info = self._depth_camera_info(msg.header, *rgb.shape[:2])  # the K depth, cloud and scale share
        self.focal.mode = params["focal_scaling"]
        pred = scale_to_training_camera(self.focal, pred, info, self.get_logger().info)
        self.stats.focal_scale = pred.scale
        self.publisher.put((msg, received, rgb, text, params, pred, info))

    def publish_frame(self, item) -> None:
        """Publisher thread, while the worker runs the next frame: depth first (what
        latency-bound consumers wait for), then the rest."""
        msg, received, rgb, text, params, pred, info = item
        depth = pred.depth.astype(np.float32, copy=False)
        if not nan_is_the_only_invalid(depth):  # two reductions; a copy only when needed
            depth = invalid_to_nan(depth)
        height, width = depth.shape
        if (height, width) != rgb.shape[:2]:
            raise RuntimeError(f"model returned {depth.shape} for a {rgb.shape[:2]} image")
        header = msg.header
        with self.worker.outputs() as open_:
            if not open_:
                return  # dropped at shutdown: the node may be gone
            self.pub_depth.publish(numpy_to_image(depth, "32FC1", header))
            if self.pub_uncertainty.get_subscription_count() > 0:  # 1.2 MB through the GIL: only when wanted
                self.pub_uncertainty.publish(numpy_to_image(pred.uncertainty.astype(np.float32, copy=False),
                                                            "32FC1", header))
            if info is not None:
                self.pub_info.publish(info)
                if params["publish_cloud"] and self.pub_points.get_subscription_count() > 0:
                    self.pub_points.publish(node_cloud(depth, pred.uncertainty, info, header, rgb, params))
            if self.pub_preview.get_subscription_count() > 0:  # colorizing costs; skip when unwatched
                d_max = params["max_range"] or self.estimator.depth_limits[1] * pred.scale
                self.pub_preview.publish(numpy_to_image(colorize_depth(depth, 0.0, d_max), "rgb8", header))
        self.stats.record(time.monotonic() - received, pred.forward_ms, text, pred.device_ms)

    def _depth_camera_info(self, header, height, width):
        info = self._camera_info
        if info is None:
            self._warn_limited("no camera_info", "no camera_info received yet: publishing depth without "
                               "camera_info/points")
            self.stats.no_camera_info += 1
            return None
        try:
            return image_camera_info(info, header, height, width)
        except ValueError as exc:
            self.stats.bad_intrinsics += 1
            self._warn_limited("bad camera_info", f"{exc}: no points published")
            return None

    def publish_diagnostics(self) -> None:
        stamp = self.get_clock().now().to_msg()
        self.pub_diagnostics.publish(diagnostic_array(self, stamp))


def created(node_class, args=None):
    """`create` for run_node: the node, after saying whether a params file it was given
    has an entry for it (a key that does not match its name is silently ignored by rcl)."""
    def create():
        node = node_class()
        warn_unmatched(node, sys.argv if args is None else args)
        return node
    return create


def main(args=None) -> int:
    use_shm_profile()  # before rclpy.init: Fast DDS reads it when the participant is created
    return run_node(created(DepthNode, args), start=DepthNode.start, stop=DepthNode.stop, args=args, name=NODE_NAME)


if __name__ == "__main__":
    sys.exit(main())
