"""The bench's side of the topics: publishes stamped images + camera_info to depth_node,
records when each depth / points message of a stamp arrives, reads the node's
/diagnostics, and runs a fixed-rate stream. Used by node_bench.py."""
import time

from common import dist, fmt, verdict
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from textdepth_ros.ros import topics
from textdepth_ros.ros.conversions import numpy_to_image
from textdepth_ros.ros.diagnostics import diagnostic_values


def camera_info(height, width) -> CameraInfo:
    """A pinhole camera of the bench's image size (focal length 0.8 x width)."""
    f = 0.8 * width
    info = CameraInfo()
    info.height, info.width, info.distortion_model = height, width, "plumb_bob"
    info.d = [0.0] * 5
    info.k = [f, 0.0, width / 2 - 0.5, 0.0, f, height / 2 - 0.5, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, width / 2 - 0.5, 0.0, 0.0, f, height / 2 - 0.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


class BenchClient:
    def __init__(self, context, node, rgb, with_cloud: bool = True):
        import rclpy

        self.node, self.rgb, self.with_cloud = node, rgb, with_cloud
        self.ros = rclpy.create_node("textdepth_node_bench", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.ros)
        self.pub_image = self.ros.create_publisher(Image, "image", qos_profile_sensor_data)
        self.pub_info = self.ros.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.arrivals = {"depth": {}, "points": {}}
        self.sent = {}
        self.diagnostics = {}
        self.counter = 0
        self.ros.create_subscription(Image, topics.DEPTH, self._collect("depth"), 10)
        if with_cloud:
            self.ros.create_subscription(PointCloud2, topics.POINTS, self._collect("points"), 10)
        self.ros.create_subscription(DiagnosticArray, "/diagnostics",
                                     lambda m: self.diagnostics.update(diagnostic_values(m) or {}), 10)
        self.info = camera_info(*rgb.shape[:2])
        self.spin_until(lambda: self.pub_image.get_subscription_count() > 0 and self.ros.count_publishers(topics.DEPTH) > 0
                        and bool(self.diagnostics), 60, "the node to connect")

    def _collect(self, topic):
        def collect(msg):
            self.arrivals[topic][(msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.monotonic()
        return collect

    def spin_until(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}; node log:\n{self.node.log()[-2000:]}")
            self.executor.spin_once(timeout_sec=0.01)

    def publish_frame(self) -> tuple:
        self.counter += 1
        msg = numpy_to_image(self.rgb, "rgb8")
        msg.header.frame_id = "camera_optical"
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + self.counter, 0
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        self.info.header = msg.header
        self.pub_info.publish(self.info)
        self.sent[key] = time.monotonic()
        self.pub_image.publish(msg)
        return key

    def one_frame(self, timeout=120.0) -> tuple:
        key = self.publish_frame()
        self.spin_until(lambda: key in self.arrivals["depth"], timeout, f"depth of frame {key}")
        if self.with_cloud:
            self.spin_until(lambda: key in self.arrivals["points"], 10, f"points of frame {key}")
        return key

    def stream(self, rate: float, seconds: float, bare: dict) -> dict:
        """Images at `rate` Hz for `seconds`: output ages vs 2 x the bare forward, the
        node's counters over the stream, end-to-end FPS."""
        self.spin_until(lambda: self.diagnostics.get("frames_received") is not None, 10, "diagnostics")
        time.sleep(0.6)
        self.executor.spin_once(timeout_sec=0.6)
        before = dict(self.diagnostics)
        first_key = self.counter + 1 + 1000
        period = 1.0 / rate
        start = time.monotonic()
        next_pub = start
        sent = 0
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                break
            if now >= next_pub:
                self.publish_frame()
                sent += 1
                next_pub += period
                if next_pub < now:  # fell behind (busy machine): do not burst to catch up
                    next_pub = now + period
            self.executor.spin_once(timeout_sec=max(0.0, min(next_pub - time.monotonic(), 0.01)))
        end_pub = time.monotonic()
        last_key = self.counter + 1000
        # drain: the frame in flight finishes, then the diagnostics catch up
        drain_deadline = time.monotonic() + 3 * max(bare["max_ms"] / 1000.0, 0.5) + 2.0
        while time.monotonic() < drain_deadline:
            self.executor.spin_once(timeout_sec=0.05)
        keys = [(s, 0) for s in range(first_key, last_key + 1)]
        outputs = [(k, self.arrivals["depth"][k]) for k in keys if k in self.arrivals["depth"]]
        ages = [t - self.sent[k] for k, t in outputs]
        d_age = dist(ages)
        two_fwd = 2 * bare["median_ms"]
        over = sum(1 for a in ages if a * 1000.0 > two_fwd)
        after = dict(self.diagnostics)

        def delta(key):
            try:
                return int(after[key]) - int(before[key])
            except (KeyError, ValueError):
                return None

        received, published, dropped = delta("frames_received"), delta("frames_published"), delta("frames_dropped")
        times = sorted(t for _, t in outputs)
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        max_ratio = d_age.get("max_ms", float("nan")) / two_fwd
        print(f"[node] stream {rate:g} Hz for {end_pub - start:.1f} s: sent {sent}, node received {received}, "
              f"published {published}, dropped (replaced unprocessed) {dropped}, lost before the node "
              f"{None if received is None else sent - received}; depth received here {len(outputs)}")
        print(f"[node] output age under the {rate:g} Hz stream: {fmt(d_age)}")
        print(f"[node] node forward under the stream (its diagnostics, mean of last 50): "
              f"{after.get('forward_ms_mean', '?')} ms (on the GPU's clock: {after.get('forward_gpu_ms_mean', '?')} ms)")
        print(f"[node] no backlog at {rate:g} Hz: max age / (2 x bare forward {two_fwd:.1f} ms) = {max_ratio:.3f} "
              f"({verdict(max_ratio, 1.0)}); outputs older than 2 x forward: {over}/{len(ages)}")
        print(f"[node] end-to-end FPS under the {rate:g} Hz stream: {fps:.2f} "
              f"(bare forward alone: {1000.0 / bare['median_ms']:.2f})")
        return {"rate_hz": rate, "seconds": end_pub - start, "sent": sent, "node_received": received,
                "node_published": published, "node_dropped": dropped, "outputs": len(outputs), "age": d_age,
                "two_forward_ms": two_fwd, "max_age_over_two_forward": max_ratio, "outputs_over_two_forward": over,
                "fps": fps, "node_forward_ms_mean": after.get("forward_ms_mean"),
                "node_forward_gpu_ms_mean": after.get("forward_gpu_ms_mean")}

    def close(self):
        self.executor.shutdown()
        self.ros.destroy_node()
