"""Input QoS against cameras in other processes with DEFAULT Fast DDS settings, at
640x480 rgb8 (921,600 bytes), the size that a best-effort subscription never received
from a default reliable publisher. With default node settings:
- a reliable camera: the node follows it to a reliable subscription and gets 10/10;
- a best-effort camera: the loss is on the sending side (see ENVIRONMENT notes), so the
  node must say so with the fix; and the fix it names (the publisher started with the
  node's shared-memory profile) delivers 10/10;
- the standard override `qos_overrides.<topic>.subscription.reliability` is honoured
  (run first: one node at a time, as /diagnostics does not say which node it is):
  forced best effort against the reliable camera loses images and the warning says to
  set it to reliable.
Delivery is read from the node's own count (`frames_received` on /diagnostics)."""
import os
import re
import subprocess
import sys
import time

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ros_helpers import REPO, SMALL_PARAMS, NodeProcess, int_value
from textdepth_ros.ros.diagnostics import diagnostic_values
from textdepth_ros.ros.fastdds_profile import ENV_VAR, profile_path
from textdepth_ros.ros.input_qos import CHECK_PERIOD_S, LARGE_IMAGES

pytestmark = pytest.mark.timeout(240)
TOPIC = "/qos_cam/image"
N = 10
FIX = f"{ENV_VAR}="


class Diagnostics:
    """The node's /diagnostics values, from our own rclpy context."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("qos_test_diagnostics", context=self.context)
        self.values = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on, 10)
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def _on(self, msg):
        self.values = diagnostic_values(msg) or self.values

    def received(self, timeout: float = 30.0) -> int:
        """frames_received from a fresh /diagnostics message."""
        self.values = {}
        deadline = time.monotonic() + timeout
        while not self.values and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.1)
        assert self.values, "no /diagnostics from the node"
        return int_value(self.values, "frames_received")

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def start_node(tmp_path, params=None):
    proc = NodeProcess(dict(SMALL_PARAMS, **(params or {})), remaps={"image": TOPIC}, log_path=tmp_path / "node.log")
    proc.wait_ready()
    return proc


def camera(reliability: str, profile: str = None, wait_for: str = "any", extra=()) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}  # a driver's default settings
    if profile:
        env[ENV_VAR] = profile
    return subprocess.Popen([sys.executable, str(REPO / "test" / "camera_publisher.py"), "--topic", TOPIC,
                             "--reliability", reliability, "--count", str(N), "--wait-for", wait_for, *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def deliver(node_proc, diagnostics, cam, wait_log: str = None, count: int = N) -> int:
    """Run `cam` once it is ready (and the node logged `wait_log`); images the node counted."""
    try:
        lines = []  # rclpy's own log lines may come first (an incompatible reader until the node adapts)
        while not lines or lines[-1].strip() != "ready":
            lines.append(cam.stdout.readline())
            assert lines[-1], "".join(lines)
        if wait_log:
            deadline = time.monotonic() + 20
            while wait_log not in node_proc.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert wait_log in node_proc.log(), node_proc.log_tail()
        before = diagnostics.received()
        cam.stdin.write("go\n")
        cam.stdin.flush()
        out, _ = cam.communicate(timeout=60)
        assert f"published {count}" in out, out
        time.sleep(1.0)  # the last image's diagnostics tick
        return diagnostics.received() - before
    finally:
        if cam.poll() is None:
            cam.kill()
            cam.wait()


@pytest.fixture(scope="module")
def diagnostics():
    watcher = Diagnostics()
    yield watcher
    watcher.close()


def test_reliability_override_is_honoured_and_explained(tmp_path, diagnostics):
    override = f"qos_overrides.{TOPIC}.subscription.reliability"
    proc = start_node(tmp_path, {override: "best_effort"})
    try:
        got = deliver(proc, diagnostics, camera("reliable"))
        print(f"reliable default-profile camera, node forced best effort: {got}/{N}")
        deadline = time.monotonic() + 40
        while "set it to reliable" not in proc.log() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        code = proc.interrupt()
        proc.cleanup()
    assert code == 0, proc.log()
    assert "subscribing reliable" not in proc.log()
    if got < N:
        assert f"override {override}): set it to reliable or remove it" in proc.log(), proc.log_tail(30)
    print('\n'.join(l for l in proc.log().splitlines() if TOPIC in l))


@pytest.fixture(scope="module")
def default_node(tmp_path_factory):
    proc = start_node(tmp_path_factory.mktemp("qos_default"))
    yield proc
    code = proc.interrupt()
    proc.cleanup()
    assert code == 0, proc.log()


def test_reliable_default_profile_camera_reaches_the_node(default_node, diagnostics):
    got = deliver(default_node, diagnostics, camera("reliable", wait_for="reliable"), "subscribing reliable")
    print(f"reliable default-profile camera, default node: {got}/{N}")
    assert got == N, default_node.log_tail(30)


def test_best_effort_default_profile_camera_is_detected_and_the_fix_works(default_node, diagnostics):
    lines_before = default_node.log().count(FIX)
    got = deliver(default_node, diagnostics, camera("best_effort"))
    print(f"best-effort default-profile camera, default node: {got}/{N}")
    print('\n'.join(l for l in default_node.log().splitlines() if TOPIC in l))
    if got == 0:  # the loss ENVIRONMENT.md measured: matched, nothing arrives; the node must say what to do
        deadline = time.monotonic() + 40  # a stall is reported after a few seconds
        while default_node.log().count(FIX) == lines_before and time.monotonic() < deadline:
            time.sleep(0.2)
    # Some frames through (a loaded sender paces its fragments; 9/10 was seen): a gap DDS
    # reports as lost gets the same advice, but a loss after the last frame that arrived
    # shows in no sequence number, so the node cannot know of it.
    warnings = [line for line in default_node.log().splitlines() if FIX in line and TOPIC in line]
    if got == 0:
        assert len(warnings) > lines_before, default_node.log_tail(30)
    for line in warnings[lines_before:]:
        assert "publish reliable" in line and LARGE_IMAGES in line, line
    fixed = deliver(default_node, diagnostics, camera("best_effort", profile=str(profile_path())))
    print(f"best-effort camera with the node's shared-memory profile: {fixed}/{N}")
    assert fixed == N, default_node.log_tail(30)


def test_switching_qos_loses_and_repeats_nothing(default_node, diagnostics):
    """A reliable publisher that starts at its first match, as `ros2 bag play` does: the
    node switches from best effort to reliable while frames arrive (small ones, which the
    best-effort subscription also gets); each frame is counted exactly once."""
    count = 60
    got = deliver(default_node, diagnostics, camera("reliable", extra=("--height", "96", "--width", "128",
                                                                         "--rate", "30", "--count", str(count))),
                  count=count)
    assert got == count, default_node.log_tail(30)



class RecreatedCamera:
    """A camera in this process whose publisher is re-created with another reliability
    (a driver restarted with other settings); small frames, which best effort delivers."""

    def __init__(self, diagnostics):
        self.node = rclpy.create_node("recreated_camera", context=diagnostics.context)
        self.pub, self.kind = None, None
        self.sent = {"reliable": 0, "best_effort": 0}
        self.msg = Image(height=96, width=128, encoding="rgb8", step=128 * 3, data=bytes(96 * 128 * 3))
        self.msg.header.frame_id = "camera_optical"

    def recreate(self, kind: str) -> None:
        if self.pub is not None:
            self.node.destroy_publisher(self.pub)
        self.kind = kind
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy[kind.upper()])
        self.pub = self.node.create_publisher(Image, TOPIC, qos)

    def followed(self) -> bool:
        """The node's subscription is reliable, matched and has had a frame (a check then
        retires the subscription before it)."""
        subscriptions = self.node.get_subscriptions_info_by_topic(TOPIC)
        return self.pub.get_subscription_count() > 0 and bool(subscriptions) and all(
            s.qos_profile.reliability == ReliabilityPolicy.RELIABLE for s in subscriptions) and \
            self.sent["reliable"] > 0

    def send_until(self, wall_time: float, rate: float) -> None:
        while time.time() < wall_time:
            n = sum(self.sent.values())
            self.msg.header.stamp.sec, self.msg.header.stamp.nanosec = 5000 + n // 100, (n % 100) * 10_000_000
            self.pub.publish(self.msg)
            self.sent[self.kind] += 1
            time.sleep(min(1.0 / rate, max(0.0, wall_time - time.time())))

    def close(self) -> None:
        self.node.destroy_node()


def check_tick(log: str) -> float:
    """Wall-clock time of one of the node's periodic QoS checks of TOPIC: the newest line a
    check logged ("subscribing ..."; not one an incompatible-QoS event caused)."""
    stamps = [float(m.group(1)) for m in re.finditer(rf"\[(\d+\.\d+)\] \[depth_node\]: {TOPIC}: \d+ publisher\(s\) "
                                                     r"offering [^(]*?: subscribing", log)]
    return stamps[-1]


def test_a_camera_recreated_best_effort_between_checks_is_followed_at_once(default_node, diagnostics):
    """The camera is reliable whenever the node's once-a-second check looks, and best
    effort for 0.7 s between two checks, twice: the checks alone never saw the best-effort
    publisher and lost all of its frames, silently (a camera alternating every 0.5 s lost
    420 of 420 so). The incompatible-QoS event rclpy reports makes the node follow at once."""
    camera = RecreatedCamera(diagnostics)
    try:
        camera.recreate("reliable")
        deadline = time.monotonic() + 30
        while not camera.followed() and time.monotonic() < deadline:  # the node's check follows it
            camera.send_until(time.time() + 0.5, rate=5)
        time.sleep(0.5)  # the frames so far are in the node's count: count from here
        before, camera.sent = diagnostics.received(), {"reliable": 0, "best_effort": 0}
        tick = check_tick(default_node.log())
        first = tick + CHECK_PERIOD_S * (int((time.time() - tick) / CHECK_PERIOD_S) + 2)  # a check retires the old one
        for burst in (first, first + 2 * CHECK_PERIOD_S):
            camera.send_until(burst + 0.15, rate=5)  # just after a check: reliable
            camera.recreate("best_effort")
            camera.send_until(burst + 0.85, rate=30)
            camera.recreate("reliable")  # back before the next check
        time.sleep(0.5)  # the last frames' diagnostics tick
        best_effort_received = diagnostics.received() - before - camera.sent["reliable"]
    finally:
        camera.close()
    print(f"recreated camera: {camera.sent}, best-effort frames received: {best_effort_received}")
    print("\n".join(line for line in default_node.log().splitlines() if TOPIC in line))
    # Following takes a switch (seen: 0.05-0.25 s of the 0.7 s, loaded VM); before: 0, or the
    # few a late-running check caught (5 and 7 of 36 seen).
    assert best_effort_received >= camera.sent["best_effort"] / 3, default_node.log_tail(20)
