"""Unreadable frames in the middle of a recording, as a hostile or broken recorder leaves
them: bag-eval skips and counts them, offline and live, and says so in one line per kind;
the run still scores every other frame and exits 0. (Before: the offline run ended in a
traceback at the first one, and the live replay thread died at the ground-truth PNG
whose header claims 60000x60000, after which the run printed metrics for the frames
before it and exited 0.)

The bag (mcap, image_transport's compressed topics, 6 frames of 48x64):
  frame 1  colour: a BMP labelled "rgb8; jpeg compressed bgr8" (OpenCV would decode it)
  frame 3  colour: JPEG signature, then garbage
  frame 4  ground truth: a compressedDepth PNG whose header claims 60000x60000
so frames 0, 2, 5 are scored."""
import numpy as np
import pytest

from bag_helpers import ProcessGroup, load_json, textdepth_cmd
from hostile_images import bmp, png_claiming
from textdepth_ros.bags import bagio
from textdepth_ros.cli import main as textdepth
from textdepth_ros.ros.compressed import HEADER, encode_color, encode_compressed_depth

H, W, N = 48, 64, 6
T0 = 1_700_000_000 * 10**9
COLOUR, DEPTH = "/camera/color/image_raw/compressed", "/camera/depth/image_raw/compressedDepth"
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def hostile_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad_frames") / "bag"
    rng = np.random.default_rng(0)
    with bagio.BagWriter(path, "mcap") as bag:
        bag.add_topic(COLOUR, bagio.COMPRESSED_TYPE)
        bag.add_topic(DEPTH, bagio.COMPRESSED_TYPE)
        bag.add_topic("/scene_text", bagio.STRING_TYPE, transient_local=True)
        bag.write("/scene_text", T0 - 1, bagio.string_message("a photo of a kitchen"))
        for i in range(N):
            stamp, log_time = T0 + i * 10**8, T0 + i * 10**8
            fmt, data = encode_color(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), "jpeg")
            if i == 1:
                data = bmp(W, H)
            elif i == 3:
                data = b"\xff\xd8\xff" + b"\x00garbage" * 60
            bag.write(COLOUR, log_time, bagio.compressed_image_message(fmt, data, stamp, "cam"))
            dfmt, ddata = encode_compressed_depth(rng.integers(500, 5000, (H, W)).astype(np.uint16), "16UC1")
            if i == 4:
                ddata = HEADER.pack(0, 0.0, 0.0) + png_claiming(60_000, 60_000, bit_depth=16, colour_type=0)
            bag.write(DEPTH, log_time, bagio.compressed_image_message(dfmt, ddata, stamp, "cam"))
    return path


def skipped_lines(err: str) -> list:
    return [line for line in err.splitlines() if "skipped" in line and "unreadable" in line]


def test_offline_skips_and_counts_unreadable_frames(hostile_bag, tmp_path, capsys):
    out = tmp_path / "offline.json"
    assert textdepth(["bag-eval", str(hostile_bag), "--offline", "--device", "cpu", "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    result = load_json(out)
    assert (result["frames_in"], result["images_unreadable"], result["ground_truth_unreadable"]) == (N, 2, 1)
    assert result["summary"]["frames_scored"] == 3
    lines = skipped_lines(err)
    assert len(lines) == 2, err  # one per kind: the first one, with the reason
    assert any("BMP" in line for line in lines) and any("60000x60000" in line for line in lines), err


def test_live_replays_past_unreadable_frames_and_counts_them(hostile_bag, tmp_path):
    out = tmp_path / "live.json"
    run = ProcessGroup(textdepth_cmd("bag-eval", hostile_bag, "--live", "--device", "cpu", "--drain-timeout", 3,
                                     "--json", out), tmp_path / "live.log")
    try:
        assert run.wait(timeout=200) == 0, run.log()
    finally:
        run.stop()
    result = load_json(out)
    # All six images went out; the node skipped the two unreadable ones (counted as dropped).
    assert (result["frames_in"], result["frames_out"], result.get("ground_truth_unreadable")) == (N, N - 2, 1), run.log()
    assert result["images_unreadable"] == 2  # told from their headers before the replay
    assert result["summary"]["frames_scored"] == 3, run.log()
    assert "Traceback" not in run.log() and any("60000x60000" in line for line in skipped_lines(run.log())), run.log()


def test_a_replay_that_stops_is_one_line_naming_the_message(hostile_bag):
    """What bag-eval --live does when its replay thread fails for any reason (here the
    callback that scores ground truth raises at the sixth message): the failure is kept,
    naming the message, for bag-eval to exit 2 with it instead of scoring a partial run."""
    import rclpy

    from textdepth_ros.bags.replay import Replayer, replay_in_thread

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("replay_failure_test", context=context)
        replayer = Replayer(node, hostile_bag, {COLOUR: "/replay_failure_test/image/compressed"}, rate=100.0,
                            observe=[DEPTH])

        def on_published(topic, log_time, raw, wall):
            if replayer.published[COLOUR] == 3 and topic == DEPTH:
                raise RuntimeError("disk gone")

        thread, failures = replay_in_thread(replayer, on_published)
        thread.join(30)
        assert not thread.is_alive()
        assert failures == [f"message 6 of the bag ({DEPTH}, log time {T0 + 2 * 10**8} ns): RuntimeError: disk gone"]
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
