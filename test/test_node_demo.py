"""`textdepth demo` end to end: the node as a process, real topics, the committed demo
model through the node's own checkpoint loading, and the files a person looks at."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ros_helpers import REPO


@pytest.mark.timeout(150)
def test_demo_shows_depth_of_the_room_and_rescales_with_the_text(tmp_path):
    """`make demo` as a newcomer runs it (the default checkpoint: the committed demo model),
    4 frames: the depth matches the room's exact ground truth (the target AbsRel <= 0.15),
    and when the description says the room is twice as large (pictures that look the same,
    twice the depth) the depth doubles."""
    out = tmp_path / "demo"
    run = subprocess.run([str(Path(sys.executable).parent / "textdepth"), "demo", "--out", str(out), "--frames", "4"],
                         capture_output=True, text=True, timeout=140)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "not for real cameras" in run.stdout and "import-pixelformer" in run.stdout and str(out) in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checkpoint"].endswith("model/demo/rooms_micro.safetensors")
    assert summary["frames_sent"] == summary["depth_received"] == summary["clouds_received"] == 4
    assert summary["encoder_calls"] == 3  # default text at warm-up + the two scene texts
    assert summary["node_exit_code"] == 0 and summary["weights"].startswith("trained checkpoint")
    accuracy = summary["accuracy"]
    assert accuracy["mean"]["abs_rel"] <= 0.15, accuracy
    assert all(frame["abs_rel"] <= 0.2 for frame in accuracy["per_frame"].values()), accuracy
    before, after = accuracy["halves"]["before"], accuracy["halves"]["after"]
    assert (before["room_scale"], after["room_scale"]) == (1.0, 2.0)
    assert 1.6 < accuracy["median_depth_ratio_after_before"] < 2.5, accuracy
    # the demo's camera is the one the checkpoint records: focal scaling leaves the depth alone
    assert "focal scaling auto: depth x1.0000 " in (out / "node.log").read_text()
    assert sorted(p.name for p in out.glob("depth_*.png")) == [f"depth_{i:04d}.png" for i in range(4)]
    ply = (out / "cloud.ply").read_bytes()
    assert ply.startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert len(ply.split(b"end_header\n", 1)[1]) == summary["cloud_ply_points"] * 15


def test_auto_checkpoint_is_the_demo_model_then_an_imported_pixelformer_one(tmp_path):
    from textdepth_ros.demo.demo import DEMO_CHECKPOINT, choose_checkpoint

    assert choose_checkpoint("auto", tmp_path) == ""  # nothing there: untrained
    (tmp_path / "pixelformer_nyu.safetensors").write_bytes(b"x")
    assert choose_checkpoint("auto", tmp_path) == str(tmp_path / "pixelformer_nyu.safetensors")
    (tmp_path / DEMO_CHECKPOINT).parent.mkdir()
    (tmp_path / DEMO_CHECKPOINT).write_bytes(b"x")
    assert choose_checkpoint("auto", tmp_path) == str(tmp_path / DEMO_CHECKPOINT)
    assert choose_checkpoint("none", tmp_path) == ""
    assert choose_checkpoint("mine.safetensors", tmp_path) == "mine.safetensors"
