"""`textdepth bag-eval` on a generated bag: --offline scores every frame; --live replays
through a real depth_node process over real DDS, and at a slow rate (nothing dropped)
its per-frame metrics equal the offline ones, because both run the same checkpoint and
map the bag's camera onto its training camera the same way (focal scaling: the
checkpoint records 80 px at 128x96, the bag's camera is NYU's scaled to 128x96)."""
import math

import pytest

from bag_helpers import H, W, ProcessGroup, load_json, make_checkpoint, textdepth_cmd
from textdepth_ros.camera_scale import Camera
from textdepth_ros.cli import main as textdepth
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.metrics import METRIC_NAMES

N = 6
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("bag_eval")


@pytest.fixture(scope="module")
def checkpoint(work):
    return make_checkpoint(work / "tiny_seed0.safetensors", camera=Camera(80.0, 80.0, W, H))


@pytest.fixture(scope="module")
def data(work):
    return generate_dataset(work / "data", n_train=0, n_test=N, height=H, width=W, seed=5)


@pytest.fixture(scope="module")
def bag(work, data):
    out = work / "bag"
    assert textdepth(["make-bag", "--root", data["root"], "--list", data["test_list"], "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def offline(work, bag, checkpoint):
    path = work / "offline.json"
    assert textdepth(["bag-eval", str(bag), "--offline", "--checkpoint", checkpoint, "--device", "cpu",
                      "--json", str(path)]) == 0
    return load_json(path)


@pytest.fixture(scope="module")
def live(work, bag, checkpoint):
    path, recorded = work / "live.json", work / "outputs_bag"
    # 2 frames/s: far slower than the tiny model at 96x128, so the node drops nothing.
    run = ProcessGroup(textdepth_cmd("bag-eval", bag, "--live", "--rate", 0.2, "--checkpoint", checkpoint,
                                     "--device", "cpu", "--record", recorded, "--json", path), work / "live.log")
    try:
        assert run.wait(timeout=240) == 0, run.log()
    finally:
        run.stop()
    return load_json(path), recorded, run.log()


def by_stamp(result):
    return {f["stamp_ns"]: f["metrics"] for f in result["frames"]}


def test_offline_scores_every_frame(offline):
    assert offline["mode"] == "offline"
    assert offline["frames_in"] == offline["summary"]["frames_scored"] == N
    assert offline["summary"]["metrics"]["count"] == N
    assert offline["image_size"] == [H, W] and offline["ground_truth_encoding"] == "16UC1"
    for name in METRIC_NAMES:
        assert math.isfinite(offline["summary"]["metrics"][name])


def test_live_metrics_equal_offline_frame_for_frame(live, offline):
    result, _, log = live
    assert result["mode"] == "live"
    assert result["frames_in"] == N
    assert result["frames_out"] == N and result["frames_dropped"] == 0, log
    live_frames, offline_frames = by_stamp(result), by_stamp(offline)
    assert set(live_frames) == set(offline_frames)
    for stamp, metrics in live_frames.items():
        for name in METRIC_NAMES:
            assert metrics[name] == pytest.approx(offline_frames[stamp][name], rel=1e-4, abs=1e-6), (stamp, name)
    lat = result["summary"]["latency_ms"]
    assert lat["count"] == N and 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert "end-to-end latency" in log and "frames in 6, out 6, dropped 0" in log
    factor = "depth x1.2979"  # sqrt(103.7716 * 103.8939) / 80: NYU's fx, fy scaled to 128x96, over 80 px
    assert len(offline["focal_scaling"]) == 1 and factor in offline["focal_scaling"][0]  # every frame: one camera
    with open(result["node_log"]) as node_log:
        assert node_log.read().count(factor) == 1


def test_live_outputs_are_written_into_a_new_bag(live, bag):
    from rosbags.rosbag2 import Reader

    from textdepth_ros.bags import bagio

    _, recorded, _ = live
    with Reader(recorded) as reader:
        topics = {c.topic: c.msgcount for c in reader.connections}
        assert topics["/depth/image"] == N and topics["/depth/uncertainty"] == N and topics["/depth/camera_info"] == N
        depth_conn = [c for c in reader.connections if c.topic == "/depth/image"]
        out = [(t, bagio.decode(raw, bagio.IMAGE_TYPE)) for _, t, raw in reader.messages(connections=depth_conn)]
    with Reader(bag) as reader:
        image_conn = [c for c in reader.connections if c.topic == "/camera/color/image_raw"]
        inputs = {bagio.header_stamp_ns(raw): t for _, t, raw in reader.messages(connections=image_conn)}
    for log_time, msg in out:
        stamp = bagio.stamp_ns(msg.header)
        assert stamp in inputs and log_time > inputs[stamp]  # on the input bag's clock, plus the latency
        assert (msg.encoding, msg.height, msg.width) == ("32FC1", H, W)
        assert msg.header.frame_id == "camera_color_optical_frame"


REALSENSE = {"--image-topic": "/camera/camera/color/image_raw",
             "--camera-info-topic": "/camera/camera/color/camera_info",
             "--depth-topic": "/camera/camera/aligned_depth_to_color/image_raw"}


def test_live_on_a_realsense_style_bag_at_its_recorded_rate(work, data, checkpoint):
    """sqlite3, RealSense topic names, 32FC1 metres, a fixed --text; played at 10 Hz."""
    bag, path = work / "realsense_bag", work / "realsense.json"
    topics = [x for kv in REALSENSE.items() for x in kv]
    assert textdepth(["make-bag", "--root", data["root"], "--list", data["test_list"], "--out", str(bag),
                      "--storage", "sqlite3", "--depth-encoding", "32FC1", *topics]) == 0
    run = ProcessGroup(textdepth_cmd("bag-eval", bag, "--live", "--checkpoint", checkpoint, "--device", "cpu",
                                     "--text", "a warehouse aisle", *topics, "--json", path), work / "realsense.log")
    try:
        assert run.wait(timeout=240) == 0, run.log()
    finally:
        run.stop()
    result = load_json(path)
    assert result["ground_truth_encoding"] == "32FC1" and result["frames_in"] == N
    assert 1 <= result["frames_out"] <= N and result["frames_dropped"] == N - result["frames_out"]
    assert result["summary"]["metrics"]["count"] == result["frames_out"]
    with open(result["node_log"]) as log:
        assert "scene text: 'a warehouse aisle'" in log.read()
