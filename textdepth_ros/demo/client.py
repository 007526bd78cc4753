"""The demo's side of the topics: publishes rendered frames + camera_info + text to
depth_node and collects depth, clouds and diagnostics. One frame at a time, waiting
for its depth, so the latencies are per frame and nothing is dropped on purpose."""
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String

from textdepth_ros.errors import UserError
from textdepth_ros.ros import topics
from textdepth_ros.ros.conversions import image_to_numpy, numpy_to_image
from textdepth_ros.ros.depth_node import text_qos
from textdepth_ros.ros.diagnostics import diagnostic_values
from textdepth_ros.ros.pointcloud import pointcloud2_to_array
from textdepth_ros.demo.room import sequence


def camera_info_for(frame, header) -> CameraInfo:
    fx, fy, cx, cy = frame.K
    info = CameraInfo(header=header, height=frame.rgb.shape[0], width=frame.rgb.shape[1])
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


class _Session:
    def __init__(self, namespace: str):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("textdepth_demo_client", namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.pub_image = self.node.create_publisher(Image, "image", qos_profile_sensor_data)
        self.pub_info = self.node.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.pub_text = self.node.create_publisher(String, "text", text_qos())
        self.depth, self.clouds, self.diagnostics = {}, {}, {}
        self.node.create_subscription(Image, topics.DEPTH, lambda m: self._store(self.depth, m), 10)
        self.node.create_subscription(PointCloud2, topics.POINTS, lambda m: self._store(self.clouds, m), 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _store(self, table, msg):
        table[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (time.monotonic(), msg)

    def _on_diagnostics(self, msg):
        values = diagnostic_values(msg)
        if values:
            self.diagnostics = values

    def spin_until(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise UserError(f"timed out after {timeout:.0f} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.02)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def exchange(namespace: str, args, texts, timeout: float) -> dict:
    s = _Session(namespace)
    try:
        s.spin_until(lambda: s.pub_image.get_subscription_count() > 0 and s.node.count_publishers(topics.DEPTH) > 0
                     and s.pub_text.get_subscription_count() > 0 and bool(s.diagnostics), timeout, "the node's topics")
        frames = list(sequence(args.frames, args.height, args.width))
        result = {"frames": frames, "depths": {}, "latencies_ms": [], "cloud": None, "clouds_received": 0,
                  "texts_sent": []}
        for i, frame in enumerate(frames):
            text = texts[0] if i < len(frames) // 2 else texts[-1]  # change the description halfway
            if not result["texts_sent"] or result["texts_sent"][-1] != text:
                s.pub_text.publish(String(data=text))
                result["texts_sent"].append(text)
                s.spin_until(lambda: s.diagnostics.get("text") == text, timeout, "the node to take the text")
            msg = numpy_to_image(frame.rgb, "rgb8")
            msg.header.frame_id = "demo_camera_optical"
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i, 0
            key = (1000 + i, 0)
            s.pub_info.publish(camera_info_for(frame, msg.header))
            sent = time.monotonic()
            s.pub_image.publish(msg)
            try:
                s.spin_until(lambda: key in s.depth and key in s.clouds, min(timeout, 30.0), f"depth of frame {i}")
            except UserError:
                continue  # best-effort input: a lost frame is reported in the summary, not fatal
            arrived, depth_msg = s.depth[key]
            result["latencies_ms"].append((arrived - sent) * 1000.0)
            result["depths"][i] = np.array(image_to_numpy(depth_msg))
            result["clouds_received"] += 1
            result["cloud"] = np.array(pointcloud2_to_array(s.clouds[key][1]))
        published = len(result["depths"])
        s.spin_until(lambda: int(s.diagnostics.get("frames_published", 0)) >= published, 10, "final diagnostics")
        result["diagnostics"] = dict(s.diagnostics)
        return result
    finally:
        s.close()
