"""Stopping depth_node the ways users stop it, while it works: Ctrl-C in a terminal
(SIGINT to the whole process group), `ros2 launch`'s Ctrl-C (the terminal's SIGINT and
then launch's own: two in a row), SIGTERM (systemd, docker stop) and SIGHUP (the
terminal closed; here to the managed node while active). Every one ends with exit code
0, no traceback, no ERROR line and no shared-memory segments left, also when the frame
in progress outlasts the old 10 s wait (which aborted the process, exit -6), and also
when the signal keeps coming until the process is gone (Python's own teardown takes
seconds, and a signal landing there killed the node by the default action: -15, -1).

The slow frame is real work: a 1x100000 image (300 KB, small enough for default DDS
best effort) makes the tiny model pad to 32x100000 and run ~28 s of CPU on one thread.
"""
import signal
import time

import numpy as np
import pytest

from ros_helpers import SMALL_PARAMS, Client, NodeProcess, camera_info, int_value, sample_image

pytestmark = pytest.mark.timeout(180)

SLOW_FRAME = (1, 100_000)
# min_side 1: let the thin frame through the size check; one torch thread: the frame
# takes ~28 s of CPU whatever else the machine runs.
SLOW_NODE = dict(SMALL_PARAMS, min_side=1)
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def assert_clean_exit(proc, code):
    log = proc.log()
    assert code == 0, log
    assert "Traceback" not in log and "[ERROR]" not in log and "[FATAL]" not in log, log
    assert proc.leftover_shm() == [], "a clean shutdown removes its own shared-memory segments"


def start(tmp_path, params, env=None, managed=False):
    """A serving node (the managed one configured and activated) and a connected client."""
    proc = NodeProcess(params, log_path=tmp_path / "node.log", new_session=True, env=env, managed=managed)
    client = None
    try:
        if managed:
            proc.wait_for_log("unconfigured: waiting for the configure transition")
            client = Client()
            client.change_state("/depth_node", "configure")
            client.change_state("/depth_node", "activate")
        proc.wait_ready()
        client = client or Client()
        client.wait_connected()
    except BaseException:
        if client is not None:
            client.close()
        proc.kill()
        raise
    return proc, client


def wait_exit(proc, timeout):
    """The exit code; a process still running after `timeout` is killed and fails the test."""
    try:
        return proc.proc.wait(timeout)
    except Exception:
        proc.kill()
        raise AssertionError(f"still running {timeout} s after the signal:\n{proc.log_tail()}")


def signal_until_exit(proc, sig, timeout=30):
    """`sig` to the group, then again every 0.2 s until the process is gone."""
    deadline = time.monotonic() + timeout
    while proc.alive() and time.monotonic() < deadline:
        proc.send_signal(sig)
        time.sleep(0.2)
    return wait_exit(proc, 1)


def start_slow_frame(client):
    height, width = SLOW_FRAME
    rgb = np.zeros((height, width, 3), np.uint8)
    key = client.send_frame(rgb, 9_000_000_000, info=camera_info(height, width))
    client.spin_until(lambda: int_value(client.diagnostics, "frames_received") >= 1, 60, "the slow frame to arrive")
    client.spin_for(1.0)  # the worker has taken it and is inside the forward pass
    return key


def test_ctrl_c_during_a_frame_longer_than_10s(tmp_path):
    proc, client = start(tmp_path, SLOW_NODE, ONE_THREAD)
    try:
        key = start_slow_frame(client)
        proc.send_signal(signal.SIGINT)  # to the whole group, as a terminal does
        code = wait_exit(proc, 60)
        assert key not in client.received["depth/image"]  # the frame was dropped, not published half-done
    finally:
        client.close()
        proc.kill()
    assert_clean_exit(proc, code)
    assert "dropped the frame in progress" in proc.log()


def test_second_signal_stops_at_once_as_under_ros2_launch(tmp_path):
    """Under `ros2 launch`, Ctrl-C reaches the node twice: from the terminal and from
    launch. The second one drops the frame in progress instead of waiting for it."""
    proc, client = start(tmp_path, SLOW_NODE, ONE_THREAD)
    try:
        start_slow_frame(client)
        proc.send_signal(signal.SIGINT)
        client.spin_for(0.05)
        proc.send_signal(signal.SIGINT)
        # The frame alone needs ~28 s of CPU: exiting well before means it was not waited for.
        code = wait_exit(proc, 20)
    finally:
        client.close()
        proc.kill()
    assert_clean_exit(proc, code)


@pytest.mark.parametrize("sig, managed", [(signal.SIGTERM, False), (signal.SIGHUP, True)],
                         ids=["SIGTERM", "SIGHUP-managed-active"])
def test_sigterm_and_sighup_again_and_again_stop_like_ctrl_c(tmp_path, sig, managed):
    proc, client = start(tmp_path, SMALL_PARAMS, managed=managed)
    try:
        key = client.send_frame(sample_image(96, 128), 5_000_000_000, info=camera_info(96, 128))
        client.wait_depth(key)
        for i in range(5):  # leave work in flight when the signal lands
            client.send_frame(sample_image(96, 128), 6_000_000_000 + i, info=camera_info(96, 128))
        code = signal_until_exit(proc, sig)
    finally:
        client.close()
        proc.kill()
    assert_clean_exit(proc, code)
    assert f"{sig.name}: stopping" in proc.log()


def test_ctrl_c_while_starting_stops_at_once(tmp_path):
    """A slow start (here a 2048x3072 warm-up: ~30 s of CPU on one thread) is
    interrupted, not waited for."""
    proc = NodeProcess(dict(SMALL_PARAMS, warmup_height=2048, warmup_width=3072), log_path=tmp_path / "node.log",
                       new_session=True, env=ONE_THREAD)
    try:
        proc.wait_for_log("model:")  # the model is built; the warm-up forward runs
        proc.send_signal(signal.SIGINT)
        code = wait_exit(proc, 20)
    finally:
        proc.kill()
    assert_clean_exit(proc, code)
    assert "SIGINT: stopped while starting" in proc.log()
