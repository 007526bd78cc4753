"""`textdepth demo` end to end (small and short): the node as a process, real topics,
and the files a person looks at."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ros_helpers import REPO


@pytest.mark.timeout(150)
def test_demo_writes_depth_pngs_cloud_and_summary(tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run([str(Path(sys.executable).parent / "textdepth"), "demo", "--out", str(out),
                          "--frames", "3", "--height", "48", "--width", "64", "--checkpoint", "none"],
                         capture_output=True, text=True, timeout=140)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "UNTRAINED" in run.stdout and str(out) in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_sent"] == summary["depth_received"] == summary["clouds_received"] == 3
    assert summary["encoder_calls"] == 3  # default text at warm-up + the two scene texts
    assert summary["node_exit_code"] == 0 and summary["weights"].startswith("UNTRAINED")
    assert sorted(p.name for p in out.glob("depth_*.png")) == ["depth_0000.png", "depth_0001.png", "depth_0002.png"]
    ply = (out / "cloud.ply").read_bytes()
    assert ply.startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert len(ply.split(b"end_header\n", 1)[1]) == summary["cloud_ply_points"] * 15


def test_auto_checkpoint_is_an_imported_pixelformer_one_when_model_has_it(tmp_path):
    from textdepth_ros.demo.demo import choose_checkpoint

    assert choose_checkpoint("auto", tmp_path) == ""  # nothing imported: untrained
    (tmp_path / "pixelformer_nyu.safetensors").write_bytes(b"x")
    assert choose_checkpoint("auto", tmp_path) == str(tmp_path / "pixelformer_nyu.safetensors")
    assert choose_checkpoint("none", tmp_path) == ""
    assert choose_checkpoint("mine.safetensors", tmp_path) == "mine.safetensors"
