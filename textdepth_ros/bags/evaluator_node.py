"""`evaluator_node`: scores a live depth stream against a depth sensor's stream.

Subscribes `depth` (the prediction, 32FC1 metres) and `gt_depth` (the sensor, 16UC1
millimetres or 32FC1 metres, aligned to the colour image), pairs them by header stamp
(the depth node copies the input image's header, and an aligned depth image carries
the colour image's stamp), and accumulates the PixelFormer metrics (metrics.py; the
Eigen crop applies only to 480x640 frames). Every `summary_period` seconds it logs a
line and publishes the JSON summary on `evaluation` (std_msgs/String); on shutdown it
writes per-frame results + summary to `results_file`.

Latency here is depth arrival minus arrival of the ground-truth frame with the same
stamp: with `ros2 bag play` the sensor depth and the colour image leave together, so
this is the node's end-to-end latency, transport included.

  ros2 run textdepth_ros evaluator_node --ros-args -r depth:=/depth \
      -r gt_depth:=/camera/depth/image_raw -p results_file:=results.json

The matching + metrics core is scoring.py (no ROS), shared with `textdepth bag-eval`.
"""
import json
import sys
import time

import numpy as np

from textdepth_ros.bags.scoring import DepthScorer, depth_in_metres, write_results

# ------------------------------------------------------------------------------- node
def parameters():
    """name -> Spec. Only what cannot skew the scores mid-run may change while it runs."""
    from textdepth_ros.ros.parameters import Spec

    return {
        "results_file": Spec("", "JSON file written on shutdown (per-frame metrics + summary); empty = none",
                             dynamic=True),
        "gt_depth_scale": Spec(0.001, "metres per unit of 16UC1 ground truth (millimetres: 0.001)",
                               low=1e-9, high=1e3),
        "crop": Spec("eigen", "eigen (NYU crop, applied only to 480x640 frames) or none",
                     check=lambda v: None if v.lower() in ("eigen", "none", "") else "eigen or none"),
        "sync_tolerance": Spec(0.0, "seconds: pair the nearest stamps within this; 0 = identical stamps only",
                               low=0.0, high=10.0),
        "min_depth": Spec(1e-3, "evaluation range lower bound (m)", low=0.0, high=1e3),
        "max_depth": Spec(10.0, "evaluation range upper bound (m)", low=0.0, high=1e3),
        "summary_period": Spec(5.0, "seconds between summary log lines / `evaluation` messages", dynamic=True,
                               low=0.1, high=3600.0),
    }


def _make_node_class():
    """The Node subclass, built on first use so DepthScorer needs no rclpy."""
    from rclpy.node import Node
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from textdepth_ros.ros.input_qos import AdaptiveInput, default_input_qos
    from textdepth_ros.ros.parameters import LiveParameters, set_timer_period

    class EvaluatorNode(Node):
        def __init__(self, **kwargs):
            super().__init__("depth_evaluator", **kwargs)
            self.params = LiveParameters(self, parameters(), on_change=self._on_parameters)
            crop = str(self.params["crop"]).lower()
            self.scorer = DepthScorer(crop=None if crop in ("none", "") else "eigen",
                                      tolerance_ns=int(float(self.params["sync_tolerance"]) * 1e9),
                                      min_depth=float(self.params["min_depth"]), max_depth=float(self.params["max_depth"]))
            # QoS follows the publishers (depth_node and `ros2 bag play` are reliable; a
            # best-effort subscription would lose their 640x480 frames); deep enough that a
            # burst is not lost while a callback scores. qos_overrides.* fix a policy.
            self.inputs = [AdaptiveInput(self, Image, "depth", self.on_prediction, default_input_qos(depth=20)),
                           AdaptiveInput(self, Image, "gt_depth", self.on_ground_truth, default_input_qos(depth=20))]
            self.pub_summary = self.create_publisher(String, "evaluation", 10)
            self._summary_timer = self.create_timer(float(self.params["summary_period"]), self.publish_summary)
            self.bad_gt = 0
            self.get_logger().info(f"scoring {self.resolve_topic_name('depth')} against "
                                   f"{self.resolve_topic_name('gt_depth')}")

        def _on_parameters(self, changed):
            if "summary_period" in changed:
                set_timer_period(self._summary_timer, changed["summary_period"])

        def on_prediction(self, msg):
            from textdepth_ros.ros.conversions import image_to_numpy

            try:
                depth = image_to_numpy(msg).astype(np.float32, copy=False)
            except ValueError as exc:
                self.get_logger().warn(f"prediction skipped: {exc}", throttle_duration_sec=5.0)
                return
            self.scorer.add_prediction(_stamp(msg), depth, arrival=time.monotonic())

        def on_ground_truth(self, msg):
            try:
                depth = depth_in_metres(msg, float(self.params["gt_depth_scale"]))
            except ValueError as exc:
                self.bad_gt += 1
                self.get_logger().warn(f"ground truth skipped: {exc}", throttle_duration_sec=5.0)
                return
            self.scorer.add_ground_truth(_stamp(msg), depth, arrival=time.monotonic())

        def publish_summary(self):
            if self.scorer.predictions_received or self.scorer.gt_received:
                self.get_logger().info(self.scorer.summary_line())
            self.pub_summary.publish(String(data=json.dumps(self.scorer.summary())))

        def finish(self, _hurry=None) -> bool:
            """On stop: the results file (written whole, never partly) and a last summary line.
            Quick, so a second signal does not cut it short."""
            path = self.params["results_file"]
            if path:
                write_results(path, self.scorer.summary(), self.scorer.frames, {"bad_ground_truth": self.bad_gt})
            self.get_logger().info(f"final: {self.scorer.summary_line()}" + (f"; results in {path}" if path else ""))
            return True

    return EvaluatorNode


def _stamp(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def main(args=None) -> int:
    from textdepth_ros.ros.fastdds_profile import use_shm_profile
    from textdepth_ros.ros.spinning import run_node

    use_shm_profile()
    return run_node(_make_node_class(), stop=lambda node, hurry: node.finish(hurry), args=args,
                    name="depth_evaluator")


if __name__ == "__main__":
    sys.exit(main())
