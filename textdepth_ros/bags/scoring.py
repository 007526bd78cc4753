"""Pairing predictions with sensor depth by stamp, and scoring them (PixelFormer's
metrics, metrics.py), without ROS: `evaluator_node` scores live topics with it and
`textdepth bag-eval` scores ground truth read straight from a bag.
"""
import json
import sys
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from textdepth_ros.image_limits import DEFAULT_MAX_PIXELS
from textdepth_ros.metrics import MetricAverager, evaluate_depth

GT_ENCODINGS = ("16UC1", "mono16", "32FC1")


def depth_in_metres(msg, scale_16u: float = 0.001, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A depth Image or compressedDepth CompressedImage -> HxW float32 metres, 0 where
    the sensor had no reading; ValueError if unreadable (a compressedDepth PNG is checked
    against `max_pixels` from its header, before decoding).
    16UC1/mono16 are integer units of `scale_16u` metres (millimetres: 0.001)."""
    from textdepth_ros.ros.compressed import decode_compressed_depth, is_compressed
    from textdepth_ros.ros.conversions import image_to_numpy

    if is_compressed(msg):  # compressedDepth: 16UC1 units or 32FC1 metres
        array, _ = decode_compressed_depth(msg, max_pixels)
        if array.dtype == np.uint16:
            return array.astype(np.float32) * np.float32(scale_16u)
        return np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    if msg.encoding not in GT_ENCODINGS:
        raise ValueError(f"ground-truth depth encoding '{msg.encoding}' is not one of {', '.join(GT_ENCODINGS)}")
    array = image_to_numpy(msg)
    if array.dtype == np.uint16:
        return array.astype(np.float32) * np.float32(scale_16u)
    return np.nan_to_num(array.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)


def percentiles(values) -> dict:
    if not values:
        return {"count": 0}
    arr = np.asarray(values, dtype=np.float64)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {"count": int(arr.size), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "mean": float(arr.mean()), "max": float(arr.max())}


class DepthScorer:
    """Pairs predictions with ground truth by stamp (either may come first) and scores them.

    Stamps are integer nanoseconds; `tolerance_ns` > 0 pairs the nearest stamp within it
    (sensors whose depth and colour stamps differ slightly). Unpaired frames wait in
    bounded buffers: a prediction for a frame the node dropped never comes."""

    def __init__(self, crop="eigen", tolerance_ns: int = 0, min_depth: float = 1e-3, max_depth: float = 10.0,
                 max_pending: int = 64):
        self.crop, self.tolerance_ns = crop, int(tolerance_ns)
        self.min_depth, self.max_depth = min_depth, max_depth
        self.max_pending = max_pending
        self._gt = OrderedDict()  # stamp -> (metres, arrival)
        self._pred = OrderedDict()  # stamp -> (metres, arrival, latency_ms)
        self._lock = threading.Lock()
        self.averager = MetricAverager()
        self.frames = []  # one record per scored frame, in scoring order
        self.latencies_ms = []
        self.gt_received = 0
        self.gt_unreadable = 0  # ground-truth frames skipped (add_bag_ground_truth)
        self.predictions_received = 0
        self.resized = 0

    # -- input --------------------------------------------------------------------------
    def add_ground_truth(self, stamp: int, depth_m: np.ndarray, arrival: float = None):
        with self._lock:
            self.gt_received += 1
            key = self._find(self._pred, stamp)
            if key is None:
                self._push(self._gt, stamp, (depth_m, arrival))
                return None
            pred, pred_arrival, latency_ms = self._pred.pop(key)
            return self._score(key, pred, depth_m, latency_ms, pred_arrival, arrival)

    def add_prediction(self, stamp: int, depth_m: np.ndarray, arrival: float = None, latency_ms: float = None):
        """Returns the frame's record once it is scored, else None (waiting for its GT)."""
        with self._lock:
            self.predictions_received += 1
            key = self._find(self._gt, stamp)
            if key is None:
                self._push(self._pred, stamp, (depth_m, arrival, latency_ms))
                return None
            gt, gt_arrival = self._gt.pop(key)
            return self._score(stamp, depth_m, gt, latency_ms, arrival, gt_arrival)

    def _find(self, pending: OrderedDict, stamp: int):
        if stamp in pending:
            return stamp
        if self.tolerance_ns <= 0 or not pending:
            return None
        nearest = min(pending, key=lambda s: abs(s - stamp))
        return nearest if abs(nearest - stamp) <= self.tolerance_ns else None

    def _push(self, pending: OrderedDict, stamp: int, item) -> None:
        pending[stamp] = item
        while len(pending) > self.max_pending:
            pending.popitem(last=False)  # oldest first: its partner is not coming

    # -- scoring ------------------------------------------------------------------------
    def _score(self, stamp, pred, gt, latency_ms, pred_arrival, gt_arrival):
        pred = np.asarray(pred, dtype=np.float32)
        if pred.shape != gt.shape:
            # Depth must be aligned to colour; a different resolution only needs resampling.
            import cv2

            pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
            self.resized += 1
        metrics = evaluate_depth(pred, gt, crop=self.crop, min_depth=self.min_depth, max_depth=self.max_depth)
        if latency_ms is None and pred_arrival is not None and gt_arrival is not None:
            latency_ms = (pred_arrival - gt_arrival) * 1000.0
        self.averager.add(metrics)
        if latency_ms is not None:
            self.latencies_ms.append(float(latency_ms))
        record = {"stamp_ns": int(stamp), "latency_ms": latency_ms, "metrics": metrics}
        self.frames.append(record)
        return record

    # -- results ------------------------------------------------------------------------
    @property
    def scored(self) -> int:
        return len(self.frames)

    def summary(self) -> dict:
        with self._lock:
            return {
                "metrics": self.averager.mean(),
                "frames_scored": self.scored,
                "frames_without_valid_gt": sum(1 for f in self.frames if f["metrics"] is None),
                "predictions_received": self.predictions_received,
                "ground_truth_received": self.gt_received,
                "predictions_without_gt": len(self._pred),
                "predictions_resized_to_gt": self.resized,
                "latency_ms": percentiles(self.latencies_ms),
            }

    def summary_line(self) -> str:
        s = self.summary()
        m, lat = s["metrics"], s["latency_ms"]
        line = f"{s['frames_scored']} frames scored"
        if m["count"]:
            line += f": abs_rel {m['abs_rel']:.4f} rmse {m['rmse']:.4f} d1 {m['d1']:.4f}"
        if lat["count"]:
            line += f", latency p50 {lat['p50']:.0f} ms p90 {lat['p90']:.0f} ms p99 {lat['p99']:.0f} ms"
        return line


def write_results(path, summary: dict, frames: list, extra: dict = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**(extra or {}), "summary": summary, "frames": frames}, indent=2, allow_nan=True))
    tmp.replace(path)  # a reader never sees half a file
    return path


def make_scorer(args) -> DepthScorer:
    """The scorer `bag-eval` options ask for (--no-crop, --sync-tolerance)."""
    return DepthScorer(crop=None if args.no_crop else "eigen", tolerance_ns=int(args.sync_tolerance * 1e9))


def add_bag_ground_truth(scorer: DepthScorer, raw: bytes, scale: float, arrival: float = None,
                         msgtype: str = "sensor_msgs/msg/Image", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """A depth frame's raw CDR bytes from a bag (Image or compressedDepth) -> the scorer.
    An unreadable frame anywhere in a recording (a compressedDepth PNG over `max_pixels`,
    undecodable data, a broken message) is skipped and counted; the first one is said."""
    from textdepth_ros.bags import bagio

    try:
        msg = bagio.decode(raw, msgtype)
        stamp = bagio.stamp_ns(msg.header)
        depth = depth_in_metres(msg, scale, max_pixels)
    except ValueError as exc:
        scorer.gt_unreadable += 1
        if scorer.gt_unreadable == 1:
            print(f"note: a ground-truth frame was skipped as unreadable ({exc}); further ones are counted",
                  file=sys.stderr)
        return
    scorer.add_ground_truth(stamp, depth, arrival)
