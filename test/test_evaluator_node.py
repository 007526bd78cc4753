"""The ROS-user route: the bag replayed into live topics (our `ros2 bag play` stand-in)
and evaluator_node scoring a depth stream against the bag's sensor depth, as separate
processes over real DDS. The "prediction" is the ground truth x 1.1, so the expected
metrics are known exactly."""
import math
import signal

import numpy as np
import pytest

from bag_helpers import ProcessGroup, load_json
from textdepth_ros.bags import bagio
from textdepth_ros.bags.scoring import DepthScorer

H, W, N = 48, 64, 5
T0 = 1_700_000_000 * 10**9
pytestmark = pytest.mark.timeout(150)


def gt_frames():
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(N):
        mm = rng.integers(500, 5000, (H, W)).astype(np.uint16)
        mm[:4] = 0  # no reading: must not count
        frames.append(mm)
    return frames


def write_prediction_bag(path):
    with bagio.BagWriter(path) as bag:
        bag.add_topic("/camera/depth/image_raw", bagio.IMAGE_TYPE)
        bag.add_topic("/depth", bagio.IMAGE_TYPE)
        for i, mm in enumerate(gt_frames()):
            stamp = T0 + i * 10**8
            metres = np.where(mm > 0, mm.astype(np.float32) / 1000 * np.float32(1.1), np.nan).astype(np.float32)
            bag.write("/camera/depth/image_raw", stamp, bagio.image_message(mm, "16UC1", stamp, "cam"))
            bag.write("/depth", stamp, bagio.image_message(metres, "32FC1", stamp + 0, "cam"))
    return path


def python_module(module, *args):
    import sys

    return [sys.executable, "-m", module, *map(str, args)]


# How users stop it: Ctrl-C in a terminal (SIGINT to the group), Ctrl-C under
# `ros2 launch` (two SIGINTs), systemd / docker (SIGTERM), a closed terminal (SIGHUP).
# Each must write the results file and exit 0 without a traceback.
STOPS = {"SIGINT": [signal.SIGINT], "SIGINT twice": [signal.SIGINT, signal.SIGINT],
         "SIGTERM": [signal.SIGTERM], "SIGHUP": [signal.SIGHUP]}


@pytest.mark.parametrize("stop", list(STOPS))
def test_evaluator_node_scores_a_replayed_bag(tmp_path, stop):
    bag = write_prediction_bag(tmp_path / "bag")
    results = tmp_path / "results.json"
    evaluator = ProcessGroup(python_module("textdepth_ros.bags.evaluator_node", "--ros-args",
                                           "-r", "gt_depth:=/camera/depth/image_raw",
                                           "-p", f"results_file:={results}", "-p", "summary_period:=0.3"),
                             tmp_path / "evaluator.log")
    replay = None
    try:
        evaluator.wait_for_log("scoring /depth against /camera/depth/image_raw", timeout=60)
        replay = ProcessGroup(python_module("textdepth_ros.bags.replay", bag, "--rate", 2, "--wait-for-subscribers", 60),
                              tmp_path / "replay.log")
        assert replay.wait(timeout=90) == 0, replay.log()
        assert f"/depth {N}" in replay.log()
        evaluator.wait_for_log(f"{N} frames scored", timeout=30)
        for sig in STOPS[stop]:
            evaluator.send_signal(sig)  # to the whole process group
        assert evaluator.wait(timeout=30) == 0, evaluator.log()
    finally:
        evaluator.stop()
        if replay is not None:
            replay.stop()
    result = load_json(results)
    summary = result["summary"]
    assert summary["frames_scored"] == N and summary["metrics"]["count"] == N
    assert summary["metrics"]["abs_rel"] == pytest.approx(0.1, abs=1e-5)
    assert summary["metrics"]["d1"] == 1.0
    assert math.isfinite(summary["latency_ms"]["p50"])
    log = evaluator.log()
    assert f"[depth_evaluator]: final: {N} frames scored: abs_rel 0.1000" in log
    assert "Traceback" not in log and "[ERROR]" not in log, log


def test_scorer_pairs_in_either_order_and_within_tolerance():
    gt = np.full((4, 4), 2.0, np.float32)
    scorer = DepthScorer(crop=None, tolerance_ns=1_000)
    assert scorer.add_prediction(10, gt * 1.5) is None  # waits for its ground truth
    record = scorer.add_ground_truth(10, gt)
    assert record["metrics"]["abs_rel"] == pytest.approx(0.5)
    scorer.add_ground_truth(2_000, gt, arrival=1.0)
    record = scorer.add_prediction(2_500, gt, arrival=1.25)  # 500 ns apart: paired
    assert record["metrics"]["abs_rel"] == 0.0 and record["latency_ms"] == pytest.approx(250.0)
    assert scorer.add_prediction(9_000, gt) is None  # nothing within 1 us
    # A prediction at another resolution is resampled to the ground truth's.
    scorer.add_ground_truth(20_000, np.full((8, 8), 2.0, np.float32))
    assert scorer.add_prediction(20_000, gt)["metrics"]["abs_rel"] == pytest.approx(0.0)
    summary = scorer.summary()
    assert summary["frames_scored"] == 3 and summary["predictions_without_gt"] == 1
    assert summary["predictions_resized_to_gt"] == 1


def test_scorer_buffers_are_bounded():
    scorer = DepthScorer(crop=None, max_pending=3)
    for stamp in range(10):
        scorer.add_ground_truth(stamp, np.ones((2, 2), np.float32))
    assert scorer.add_prediction(0, np.ones((2, 2), np.float32)) is None  # evicted long ago
    assert scorer.add_prediction(9, np.ones((2, 2), np.float32)) is not None
