"""The package as a ROS user has it: `colcon build` into a workspace, then `ros2 launch`,
`ros2 run`, `ros2 param`, `ros2 lifecycle` from ROS 2's own tools.

Those tools are not on PyPI; wheels built from their sources lie in
../shared/wheels/ros2-launch beside the repository (or $TEXTDEPTH_ROS2_WHEELS). The
first use installs them and colcon into the venv (once; test tooling only, not a
dependency of the product). Without that folder the tests that need it skip.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
COLCON_PACKAGES = ["colcon-core", "colcon-ros", "colcon-python-setup-py", "colcon-bash", "colcon-package-selection",
                   "colcon-parallel-executor", "colcon-output", "colcon-library-path", "colcon-recursive-crawl",
                   "colcon-defaults"]
TOOL_NEEDS = ["osrf-pycommon", "argcomplete", "psutil"]  # pure-Python needs of launch / ros2cli


def wheels_dir() -> Path:
    return Path(os.environ.get("TEXTDEPTH_ROS2_WHEELS") or REPO.parent / "shared" / "wheels" / "ros2-launch")


def tools_installed() -> bool:
    return all(importlib.util.find_spec(m) for m in ("launch_ros", "ros2cli", "ros2lifecycle")) and \
        (VENV_BIN / "colcon").exists() and (VENV_BIN / "ros2").exists()


def install_tools() -> None:
    """pip-install the ROS 2 CLI wheels and colcon into this venv unless already there."""
    if tools_installed():
        return
    wheels = sorted(str(w) for w in wheels_dir().glob("*.whl"))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", *wheels], check=True, capture_output=True)
    subprocess.run(pip + TOOL_NEEDS + COLCON_PACKAGES, check=True, capture_output=True)
    importlib.invalidate_caches()


def build(workspace: Path) -> Path:
    """Copy the repository's files (tracked and untracked, not ignored) to
    workspace/src/textdepth_ros and `colcon build` it. Returns the install folder."""
    source = workspace / "src" / "textdepth_ros"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    result = subprocess.run(["colcon", "build"], cwd=workspace, env=environment(None), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"colcon build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return workspace / "install"


def environment(install) -> dict:
    """This process's environment (ROS domain, ROS_HOME, loopback discovery) with the venv's
    tools first on PATH and, with `install`, what `source install/setup.bash` adds."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # launch_ros imports composition_interfaces, which has no wheel: the stand-in lets it import.
    paths = [str(wheels_dir() / "standins")]
    if install is not None:
        prefix = Path(install) / "textdepth_ros"
        env["AMENT_PREFIX_PATH"] = os.pathsep.join(filter(None, [str(prefix), env.get("AMENT_PREFIX_PATH")]))
        paths.insert(0, str(next(prefix.glob("lib/python*/site-packages"))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*paths, env.get("PYTHONPATH")]))
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # the node chooses, as on a user's machine
    return env


def ros2(install, *args, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """A short `ros2 ...` command (param, node, lifecycle, topic), without the daemon."""
    return subprocess.run(["ros2", *map(str, args)], env=environment(install), capture_output=True, text=True,
                          timeout=timeout)


def ros2_discovering(install, *args, done, tries: int = 4, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """`ros2 <args> --no-daemon --spin-time 1`, repeated until `done(result)` with twice the
    spin time each try (1, 2, 4, 8 s): each call is a fresh DDS participant, and under load
    discovery can outlast a short --spin-time. (Without the daemon every call spins its
    whole --spin-time; a fixed 3 s cost each of the suite's calls 2 s more when 1 s did.)"""
    for attempt in range(tries):
        result = ros2(install, *args, "--no-daemon", "--spin-time", str(2 ** attempt), timeout=timeout)
        if done(result):
            break
    return result
