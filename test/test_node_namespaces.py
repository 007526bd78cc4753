"""Two depth nodes in two namespaces, as on a robot with two cameras: each has its own
/diagnostics status (named by the node's fully qualified name, as diagnostic_updater
does with use_fqn), and a node asked for CUDA where there is none says so once. The
right one spins on SingleThreadedExecutor (`executor: single`), the left one on the
default (EventsExecutor where rclpy has it): both serve."""
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray

from ros_helpers import (SMALL_PARAMS, Client, NodeProcess, Stamps, camera_info, connected_client, default_executor,
                         sample_image)
from textdepth_ros.ros.diagnostics import diagnostic_values

pytestmark = pytest.mark.timeout(180)


def test_two_namespaces_two_statuses_two_executors_and_one_cuda_warning(tmp_path):
    settings = {"left": {"device": "cuda"}, "right": {"device": "cpu", "executor": "single"}}
    procs = {ns: NodeProcess(dict(SMALL_PARAMS, **settings[ns]), namespace=f"/{ns}", log_path=tmp_path / f"{ns}.log")
             for ns in ("left", "right")}
    client = None
    try:
        for proc in procs.values():
            proc.wait_ready()
        client = Client()
        names = {}
        client.node.create_subscription(DiagnosticArray, "/diagnostics",
                                        lambda msg: names.update({s.name: s for s in msg.status}), 10)
        client.spin_until(lambda: {"/left/depth_node: inference", "/right/depth_node: inference"} <= set(names),
                          60, "a status from each node")
        array = DiagnosticArray(status=list(names.values()))
        assert diagnostic_values(array, "/left/depth_node")["device"] != ""
        assert diagnostic_values(array, "/right/depth_node")["device"] == "cpu"
        for ns in procs:  # each serves a frame on its own executor
            with connected_client(name=f"client_{ns}", namespace=f"/{ns}") as camera:
                camera.wait_depth(camera.send_frame(sample_image(64, 80), Stamps.take(), info=camera_info(64, 80)))
    finally:
        if client is not None:
            client.close()
        codes = {ns: proc.stop(timeout=30) for ns, proc in procs.items()}  # SIGINT; SIGKILL if it hangs
    assert codes == {"left": 0, "right": 0}
    assert "spinning on SingleThreadedExecutor" in procs["right"].log()
    assert f"spinning on {default_executor()}" in procs["left"].log()
    if not torch.cuda.is_available():
        log = procs["left"].log()
        assert log.count("CUDA is not available") == 1, log
        assert "[WARN]" in next(line for line in log.splitlines() if "CUDA is not available" in line)
