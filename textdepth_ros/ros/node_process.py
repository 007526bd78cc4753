"""A ROS 2 program run as a child process, the way users run it: output to a log file,
a ready line to wait for, SIGINT-then-SIGKILL shutdown, and clean-up of the Fast DDS
shared-memory segments a killed participant leaves in /dev/shm (it never deletes its
own). Used by the demo, live bag evaluation, the benchmarks and the tests.
"""
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READY_LINE = "ready:"  # depth_node logs this once it serves frames


def depth_node_argv(params: dict = None, params_file=None, namespace: str = None, remaps: dict = None) -> list:
    """Command line of depth_node with a params file, `-p` overrides and remaps."""
    argv = [sys.executable, "-m", "textdepth_ros.ros.depth_node", "--ros-args"]
    if namespace:
        argv += ["-r", f"__ns:={namespace}"]
    for source, target in (remaps or {}).items():
        argv += ["-r", f"{source}:={target}"]
    if params_file:
        argv += ["--params-file", str(params_file)]
    for key, value in (params or {}).items():
        argv += ["-p", f"{key}:={param_text(value)}"]
    return argv


def param_text(value) -> str:
    """A parameter value as `-p name:=value` needs it (YAML syntax)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "''" if value == "" else value
    return str(value)


class NodeProcess:
    """`argv` as a child process. With `new_session`, signals go to its whole process
    group (what Ctrl-C in a terminal does), so programs that start nodes stop them too.
    `env`: variables to set for the child (a value of None removes one)."""

    def __init__(self, argv, log_path=None, new_session: bool = False, cwd=None, env: dict = None):
        self.log_path = Path(log_path or tempfile.mkstemp(prefix="textdepth_node_", suffix=".log")[1])
        self._log = open(self.log_path, "wb")
        self._group = new_session
        self._shm_before = all_fastdds_files()
        self._shm = set()
        self.proc = subprocess.Popen(list(map(str, argv)), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=new_session, cwd=cwd,
                                     env=child_environment(env))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join("    " + line for line in self.log().strip().splitlines()[-lines:])

    def wait_for_log(self, text: str = READY_LINE, timeout: float = 90.0) -> None:
        """Until `text` appears in the output. Raises RuntimeError if the process exits
        first, TimeoutError after `timeout` seconds (the message holds the log's tail)."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if not self.alive():
                raise RuntimeError(f"exited with code {self.proc.returncode} before '{text}':\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no '{text}' after {timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.1)
        self._shm |= fastdds_files_of(self.pid)

    def send_signal(self, sig) -> None:
        """`sig` to the process, or to its whole group with `new_session` (a terminal's Ctrl-C)."""
        self._shm |= fastdds_files_of(self.pid)
        try:
            os.killpg(self.pid, sig) if self._group else self.proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def interrupt(self, timeout: float = 30.0) -> int:
        """SIGINT and wait for the exit code; a process that hangs is killed and
        TimeoutExpired raised (a clean shutdown is what the caller is checking)."""
        if self.alive():
            self.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop(timeout=0)
            raise

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT, then SIGKILL after `timeout`; never raises. Returns the exit code."""
        if self.alive() and timeout > 0:
            self.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.alive() or self._group:
            self.send_signal(signal.SIGKILL)  # with a group: grandchildren that survived too
        if self.alive():
            self.proc.wait(10)
        self.cleanup()
        return self.proc.returncode

    def cleanup(self) -> list:
        """Close the log and remove segments this process (or its group) left behind."""
        if not self._log.closed:
            self._log.close()
        new = self._shm | (all_fastdds_files() - self._shm_before if self._group else set())
        return remove_orphaned_fastdds_files(new)

    def leftover_shm(self) -> list:
        """This process's own segments still on disk (call after it exited)."""
        return sorted(p for p in self._shm if os.path.exists(p) and "fastdds_port" not in p)


def all_fastdds_files() -> set:
    return set(glob.glob("/dev/shm/fastdds_*")) - set(glob.glob("/dev/shm/fastdds_*_el"))


def fastdds_files_of(pid: int) -> set:
    """/dev/shm/fastdds_* segments a live process has mapped."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    return {line.split()[-1] for line in maps.splitlines() if "/dev/shm/fastdds_" in line}


def _mapped_by_anyone() -> set:
    mapped = set()
    for maps in glob.glob("/proc/[0-9]*/maps"):
        try:
            mapped |= {line.split()[-1] for line in Path(maps).read_text().splitlines() if "/dev/shm/fastdds_" in line}
        except OSError:
            continue
    return mapped


def remove_orphaned_fastdds_files(paths) -> list:
    """Remove the given segments (and their _el / mutex companions) unless a live
    process still maps them."""
    in_use = _mapped_by_anyone()
    removed = []
    for path in paths:
        if path in in_use:
            continue
        name = os.path.basename(path)
        for victim in (path, path + "_el", f"/dev/shm/sem.{name}_mutex"):
            try:
                os.unlink(victim)
                removed.append(victim)
            except OSError:
                pass
    return removed


def child_environment(changes: dict = None) -> dict:
    """This process's environment with `changes` applied; a value of None removes a variable."""
    env = dict(os.environ)
    for name, value in (changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env
