"""Two depth nodes in two namespaces, as on a robot with two cameras: each has its own
/diagnostics status (named by the node's fully qualified name, as diagnostic_updater
does with use_fqn), and a node asked for CUDA where there is none says so once."""
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray

from ros_helpers import SMALL_PARAMS, Client, NodeProcess
from textdepth_ros.ros.diagnostics import diagnostic_values

pytestmark = pytest.mark.timeout(180)


def test_two_namespaces_two_statuses_and_one_cuda_warning(tmp_path):
    procs = {ns: NodeProcess(dict(SMALL_PARAMS, device="cuda" if ns == "left" else "cpu"), namespace=f"/{ns}",
                             log_path=tmp_path / f"{ns}.log") for ns in ("left", "right")}
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
    finally:
        if client is not None:
            client.close()
        codes = {ns: proc.stop(timeout=30) for ns, proc in procs.items()}  # SIGINT; SIGKILL if it hangs
    assert codes == {"left": 0, "right": 0}
    if not torch.cuda.is_available():
        log = procs["left"].log()
        assert log.count("CUDA is not available") == 1, log
        assert "[WARN]" in next(line for line in log.splitlines() if "CUDA is not available" in line)
