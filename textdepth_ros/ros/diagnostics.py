"""Counters the node keeps and the diagnostic_msgs/DiagnosticArray it publishes.

One status, `<node's fully qualified name>: inference` (as diagnostic_updater names
statuses with its use_fqn option, so two nodes in two namespaces stay apart), WARN
while the weights are untrained. Tests and the demo read its values (frames, drops,
encoder_calls, text) instead of reaching into the process.
"""
import threading
import time
from collections import deque

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

WINDOW = 50  # frames in the rate / latency window


class NodeStats:
    def __init__(self):
        self._lock = threading.Lock()
        self.published = 0
        self.bad_frames = 0  # unreadable images (encoding, size)
        self.failed = 0  # frames that raised in the model or publishing
        self.no_camera_info = 0
        self.bad_intrinsics = 0
        self.forward_ms = 0.0
        self.focal_scale = 1.0  # the last frame's focal-scaling factor (camera_scale.py)
        self.text = ""
        self.counts = {"too_large": 0, "too_small": 0, "text_updates": 0}
        self._latencies = deque(maxlen=WINDOW)
        self._forwards = deque(maxlen=WINDOW)
        self._device_forwards = deque(maxlen=WINDOW)  # CUDA: GPU time of the same frames
        self._times = deque(maxlen=WINDOW)

    def record(self, latency_s: float, forward_ms: float, text: str, device_ms: float = None) -> None:
        with self._lock:
            self.published += 1
            self.forward_ms = forward_ms
            self.text = text
            self._latencies.append(latency_s * 1000.0)
            self._forwards.append(forward_ms)
            if device_ms is not None:
                self._device_forwards.append(device_ms)
            self._times.append(time.monotonic())

    def count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def window(self):
        """(rate Hz, mean latency ms, max latency ms, mean forward ms, mean forward on the
        GPU's clock ms or None off CUDA) over the last frames."""
        with self._lock:
            lat, times, forwards = list(self._latencies), list(self._times), list(self._forwards)
            devices = list(self._device_forwards)
        device_mean = sum(devices) / len(devices) if devices else None
        if not lat:
            return 0.0, 0.0, 0.0, 0.0, device_mean
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        rate = (len(times) - 1) / span if span > 0 else 0.0
        if times and time.monotonic() - times[-1] > 5.0:
            rate = 0.0  # no frames lately
        return rate, sum(lat) / len(lat), max(lat), sum(forwards) / len(forwards), device_mean


def diagnostic_array(node, stamp) -> DiagnosticArray:
    stats, estimator = node.stats, node.estimator
    rate, latency, latency_max, forward_mean, device_mean = stats.window()
    untrained = bool(estimator.untrained) if estimator else True
    values = {
        "frames_received": node.slot.received,
        "frames_published": stats.published,
        "frames_dropped": node.slot.dropped,
        "bad_frames": stats.bad_frames,
        "failed_frames": stats.failed,
        "frames_without_camera_info": stats.no_camera_info,
        "frames_with_bad_intrinsics": stats.bad_intrinsics,
        "frames_too_large": stats.counts["too_large"],
        "frames_too_small": stats.counts["too_small"],
        "rate_hz": f"{rate:.2f}",
        "latency_ms_mean": f"{latency:.1f}",
        "latency_ms_max": f"{latency_max:.1f}",
        "forward_ms_last": f"{stats.forward_ms:.1f}",
        "forward_ms_mean": f"{forward_mean:.1f}",
        # CUDA: the forward on the GPU's clock; forward - this = waiting for the host or the GIL
        "forward_gpu_ms_mean": "-" if device_mean is None else f"{device_mean:.1f}",
        "encoder_calls": estimator.encoder_calls if estimator else 0,
        "device": str(estimator.device) if estimator else "",
        "model": estimator.describe() if estimator else "loading",
        "untrained": str(untrained).lower(),
        "focal_scale": f"{stats.focal_scale:.6g}",
        "text": node.current_text,
        "text_updates": stats.counts["text_updates"],
        "text_source": node.params["text_source"],
    }
    auto = getattr(node, "auto_text", None)
    if auto is not None:  # the recognised scene, its score, the decisions (ros/auto_text.py)
        values.update(auto.diagnostic_values())
    status = DiagnosticStatus()
    status.name = status_name(node.get_fully_qualified_name())
    status.hardware_id = values["device"]
    if untrained:
        status.level, status.message = DiagnosticStatus.WARN, "running UNTRAINED weights"
    elif stats.failed:
        status.level, status.message = DiagnosticStatus.WARN, f"{stats.failed} frames failed"
    elif auto is not None and auto.report["untrained"]:
        status.level, status.message = DiagnosticStatus.WARN, "scene recognition with an UNTRAINED CLIP image tower"
    else:
        status.level, status.message = DiagnosticStatus.OK, "ok"
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg


def status_name(node_fqn: str) -> str:
    return f"{node_fqn}: inference"


def diagnostic_values(msg: DiagnosticArray, node_fqn: str = None) -> dict:
    """The key/value pairs of a depth node's status in a DiagnosticArray (that of the
    node `node_fqn`, or of any depth node); empty if there is none."""
    for status in msg.status:
        ours = status.name == status_name(node_fqn) if node_fqn else status.name.endswith(status_name(""))
        if ours:
            return {kv.key: kv.value for kv in status.values}
    return {}
