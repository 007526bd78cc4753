"""Helpers for the bag tests: a small generated dataset, a seeded checkpoint, running
`textdepth` as a child process group with a hard timeout, and shared-memory hygiene."""
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ros_helpers import remove_orphaned_fastdds_files

REPO = Path(__file__).resolve().parent.parent
H, W = 96, 128  # the tiny model runs ~0.05 s/frame at this size on CPU


def make_checkpoint(path) -> str:
    import torch

    from textdepth_ros.model import build_model
    from textdepth_ros.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    return str(save_checkpoint(path, build_model("tiny", pretrained=False)))


def fastdds_files() -> set:
    return set(glob.glob("/dev/shm/fastdds_*")) - set(glob.glob("/dev/shm/fastdds_*_el"))


class ProcessGroup:
    """A child in its own session: on timeout or teardown the whole group (the CLI and the
    depth_node it started) gets SIGINT, then SIGKILL; its orphaned segments are removed."""

    def __init__(self, argv, log_path):
        self.before = fastdds_files()
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, cwd=REPO, env=dict(os.environ))

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.proc.args[2:5]} still running after {timeout} s:\n{self.log()[-3000:]}")

    def wait_for_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"'{text}' not seen (exit {self.proc.poll()}):\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def interrupt(self, timeout: float = 20.0) -> int:
        """SIGINT to the group (what Ctrl-C does), SIGKILL if it does not end."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.stop()
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # grandchildren too, if any survived
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(10)
        self._log.close()
        remove_orphaned_fastdds_files(fastdds_files() - self.before)


def textdepth_cmd(*args) -> list:
    return [sys.executable, "-m", "textdepth_ros.cli", *map(str, args)]


def load_json(path) -> dict:
    return json.loads(Path(path).read_text())
