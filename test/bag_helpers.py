"""Helpers for the bag tests: a small generated dataset, a seeded checkpoint, running
`textdepth` as a child process group with a hard timeout, and shared-memory hygiene."""
import json
import subprocess
import sys
from pathlib import Path

from textdepth_ros.ros.node_process import NodeProcess

REPO = Path(__file__).resolve().parent.parent
H, W = 96, 128  # the tiny model runs ~0.05 s/frame at this size on CPU


def make_checkpoint(path, camera=None) -> str:
    """A seeded tiny checkpoint; `camera`: the training camera it records (camera_scale.Camera)."""
    import torch

    from textdepth_ros.model import build_model
    from textdepth_ros.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    return str(save_checkpoint(path, build_model("tiny", pretrained=False), extra={"camera": camera} if camera else None))


class ProcessGroup(NodeProcess):
    """A CLI child in its own session: on timeout or teardown the whole group (the CLI and
    the depth_node it started) gets SIGINT, then SIGKILL; its orphaned segments are removed."""

    def __init__(self, argv, log_path):
        super().__init__(argv, log_path, new_session=True, cwd=REPO)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.proc.args[2:5]} still running after {timeout} s:\n{self.log()[-3000:]}")


def textdepth_cmd(*args) -> list:
    return [sys.executable, "-m", "textdepth_ros.cli", *map(str, args)]


def load_json(path) -> dict:
    return json.loads(Path(path).read_text())
