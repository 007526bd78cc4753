"""Bad bags give one clear error line (exit 2) before any model or node starts, or are
handled (out-of-order stamps, slightly offset depth stamps) — never a hang."""
import os
from pathlib import Path

import numpy as np
import pytest

from bag_helpers import ProcessGroup, load_json, textdepth_cmd
from textdepth_ros.cli import main as textdepth
from textdepth_ros.bags import bagio

H, W = 48, 64
T0 = 1_700_000_000 * 10**9
pytestmark = pytest.mark.timeout(120)


def write_bag(path, stamps=(0, 100, 200), gt_offset_ns=0, image_encoding="rgb8", gt_encoding="16UC1",
              text=True, depth_type=bagio.IMAGE_TYPE, storage="mcap", messages=True):
    rng = np.random.default_rng(0)
    with bagio.BagWriter(path, storage) as bag:
        bag.add_topic("/camera/color/image_raw", bagio.IMAGE_TYPE)
        bag.add_topic("/camera/depth/image_raw", depth_type)
        if text:
            bag.add_topic("/scene_text", bagio.STRING_TYPE, transient_local=True)
        if not messages:
            return path
        if text:
            bag.write("/scene_text", T0 - 1, bagio.string_message("a photo of a kitchen"))
        for i, ms in enumerate(stamps):
            stamp = T0 + ms * 1_000_000
            rgb = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
            image = bagio.image_message(rgb, "rgb8", stamp, "cam")
            image.encoding = image_encoding  # same bytes, possibly a label the tools do not know
            bag.write("/camera/color/image_raw", T0 + i * 10**8, image)
            if depth_type == bagio.STRING_TYPE:
                bag.write("/camera/depth/image_raw", T0 + i * 10**8, bagio.string_message("not depth"))
                continue
            mm = rng.integers(500, 5000, (H, W)).astype(np.uint16)
            depth = bagio.image_message(mm, "16UC1", stamp + gt_offset_ns, "cam")
            depth.encoding = gt_encoding
            bag.write("/camera/depth/image_raw", T0 + i * 10**8, depth)
    return path


def bag_eval_error(capsys, *argv) -> str:
    assert textdepth(["bag-eval", *map(str, argv)]) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("make, extra, message", [
    (lambda p: p / "missing", [], "bag not found"),
    (lambda p: (p / "file.mcap").write_bytes(b"x") and p / "file.mcap", [], "is a file"),
    (lambda p: write_bag(p / "b", messages=False), [], "is empty"),
    (lambda p: write_bag(p / "b"), ["--depth-topic", "/camera/aligned_depth_to_color/image_raw"],
     "no ground-truth depth topic '/camera/aligned_depth_to_color/image_raw'"),
    (lambda p: write_bag(p / "b", text=False), [], "give one description with --text"),
    (lambda p: write_bag(p / "b", image_encoding="yuv422"), [], "encoding 'yuv422'"),
    (lambda p: write_bag(p / "b", gt_encoding="8UC4"), [], "encoding '8UC4'"),
    (lambda p: write_bag(p / "b", depth_type=bagio.STRING_TYPE), [], "has type std_msgs/msg/String"),
    (lambda p: write_bag(p / "b", stamps=(0, 100, 100)), [], "share header stamps"),
    (lambda p: write_bag(p / "b", gt_offset_ns=2_000_000), [], "--sync-tolerance"),
    (lambda p: write_bag(p / "b"), ["--checkpoint", "/nonexistent.safetensors"], "checkpoint not found"),
    (lambda p: write_bag(p / "b"), ["--rate", "0"], "--rate must be positive"),
], ids=["no-path", "bare-file", "empty", "missing-depth-topic", "no-text-source", "bad-image-encoding",
        "bad-depth-encoding", "wrong-type", "duplicate-stamps", "unpaired-stamps", "missing-checkpoint", "zero-rate"])
@pytest.mark.parametrize("mode", ["--offline", "--live"])
def test_bad_bag_is_one_clear_error(tmp_path, capsys, make, extra, message, mode):
    err = bag_eval_error(capsys, make(tmp_path), mode, *extra)
    assert message in err and "Traceback" not in err


def test_out_of_order_and_offset_stamps_are_handled(tmp_path, capsys):
    # Stamps go backwards once and depth is 2 ms late: paired by nearest stamp within 5 ms.
    bag = write_bag(tmp_path / "b", stamps=(0, 200, 100), gt_offset_ns=2_000_000, storage="sqlite3")
    out = tmp_path / "r.json"
    assert textdepth(["bag-eval", str(bag), "--offline", "--device", "cpu", "--sync-tolerance", "0.005",
                      "--json", str(out)]) == 0
    assert "go backwards" in capsys.readouterr().err
    result = load_json(out)
    assert result["out_of_order_stamps"] == 1
    assert result["summary"]["frames_scored"] == 3 and result["summary"]["metrics"]["count"] == 3
    assert sorted(f["stamp_ns"] - T0 for f in result["frames"]) == [0, 100_000_000, 200_000_000]


def session_members(sid: int) -> list:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of stat: session id
            members.append(int(stat.parent.name))
    return members


def test_node_start_timeout_is_an_error_not_a_hang(tmp_path):
    bag = write_bag(tmp_path / "b")
    run = ProcessGroup(textdepth_cmd("bag-eval", bag, "--live", "--device", "cpu", "--start-timeout", "1"),
                       tmp_path / "log")
    try:
        assert run.wait(timeout=90) == 2
        assert "did not subscribe within --start-timeout 1 s" in run.log()
        assert session_members(run.proc.pid) == []  # the node it started is gone too
    finally:
        run.stop()
    assert os.path.exists(tmp_path / "log")
