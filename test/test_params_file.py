"""Parameter files apply wherever the node runs: the shipped YAML's key matches
depth_node in any namespace; our reading of params-file keys (bag-eval, the node's
warning) agrees with rcl's own; a real depth_node in a namespace with a file of
non-default values reports those values over its parameter service; a file keyed
for another node is said, not silently dropped; bag-eval reads files the same way."""
import pytest
import yaml
from rcl_interfaces.srv import GetParameters

import rclpy
from ros_helpers import REPO
from textdepth_ros.cli import main as textdepth
from textdepth_ros.ros import node_process
from textdepth_ros.ros.params_file import key_matches, parameters_for, unmatched_params_files

YAML = REPO / "config" / "depth.yaml"
KEYS = ["depth_node", "/depth_node", "/**", "/**/depth_node", "/*/depth_node", "/robot1/depth_node",
        "/robot1/**", "/other_node"]
NAMESPACES = ["/", "/robot1", "/robot1/front"]


def rcl_applies(key: str, namespace: str, tmp_path) -> bool:
    """Whether rcl itself gives a node 'depth_node' in `namespace` the values under `key`."""
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({key: {"ros__parameters": {"probe": 7}}}))
    context = rclpy.Context()
    rclpy.init(args=["x", "--ros-args", "-r", f"__ns:={namespace}", "--params-file", str(path)], context=context)
    try:
        node = rclpy.create_node("depth_node", context=context)
        value = node.declare_parameter("probe", 0).value
        node.destroy_node()
        return value == 7
    finally:
        rclpy.try_shutdown(context=context)


def test_key_matching_agrees_with_rcl(tmp_path):
    for key in KEYS:
        for namespace in NAMESPACES:
            fqn = namespace.rstrip("/") + "/depth_node"
            assert key_matches(key, fqn) == rcl_applies(key, namespace, tmp_path), (key, namespace)


def test_shipped_yaml_applies_in_any_namespace():
    document = yaml.safe_load(YAML.read_text())
    for fqn in ("/depth_node", "/textdepth/depth_node", "/robot1/front/depth_node"):
        assert parameters_for(document, fqn)["warmup_height"] == 480, fqn
    assert parameters_for({"depth_node": {"ros__parameters": {"a": 1}}}, "/textdepth/depth_node") is None


def test_nested_values_become_dotted_names():
    document = {"/**": {"ros__parameters": {"qos_overrides": {"/image": {"subscription": {"reliability": "reliable"}}}}}}
    assert parameters_for(document, "/x/depth_node") == {"qos_overrides./image.subscription.reliability": "reliable"}


NON_DEFAULT = {"default_text": "a greenhouse with plants", "max_range": 4.5, "cloud_rgb": False,
               "warmup_height": 64, "warmup_width": 96, "diagnostics_period": 0.3, "model_config": "tiny",
               "executor": "single"}


def get_parameters(fqn: str, names) -> dict:
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("param_reader", context=context)
        client = node.create_client(GetParameters, f"{fqn}/get_parameters")
        assert client.wait_for_service(timeout_sec=30), f"no parameter service {fqn}/get_parameters"
        future = client.call_async(GetParameters.Request(names=list(names)))
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.spin_until_future_complete(future, timeout_sec=30)
        from rclpy.parameter import parameter_value_to_python

        return {name: parameter_value_to_python(value) for name, value in zip(names, future.result().values)}
    finally:
        rclpy.try_shutdown(context=context)


@pytest.mark.timeout(150)
def test_node_in_a_namespace_takes_a_files_non_default_values(tmp_path):
    """Keyed as the shipped YAML is; and a second file keyed `depth_node:` (the old,
    silently ignored form) makes the node say so."""
    good = tmp_path / "robot.yaml"
    good.write_text(yaml.safe_dump({"/**/depth_node": {"ros__parameters": NON_DEFAULT}}))
    stale = tmp_path / "stale.yaml"
    stale.write_text(yaml.safe_dump({"depth_node": {"ros__parameters": {"max_range": 9.0}}}))
    argv = [*node_process.depth_node_argv(params_file=good, namespace="/robot1"), "--params-file", str(stale)]
    proc = node_process.NodeProcess(argv, tmp_path / "node.log")
    try:
        proc.wait_for_log(node_process.READY_LINE, 120)
        values = get_parameters("/robot1/depth_node", list(NON_DEFAULT))
    finally:
        code = proc.interrupt()
        proc.cleanup()
    assert values == NON_DEFAULT, proc.log()
    assert code == 0, proc.log()
    log = proc.log()
    assert "warm-up forward 64x96" in log and "spinning on SingleThreadedExecutor" in log
    warnings = [line for line in log.splitlines() if "has no entry for /robot1/depth_node" in line]
    assert len(warnings) == 1 and str(stale) in warnings[0] and "/**/depth_node" in warnings[0], log
    assert unmatched_params_files(argv, "/robot1/depth_node") == [(str(stale), ["depth_node"])]


def test_bag_eval_reads_a_namespaced_params_file_or_says_why_not(tmp_path, capsys):
    """The launch file's namespace by default; a file for another node is one clear line."""
    from test_bag_errors import write_bag

    bag = write_bag(tmp_path / "bag")
    keyed_for_launch = tmp_path / "launch.yaml"
    keyed_for_launch.write_text(yaml.safe_dump({"/textdepth/depth_node": {"ros__parameters": {
        "model_config": "tiny", "device": "cpu", "default_text": "a boiler room"}}}))
    out = tmp_path / "r.json"
    assert textdepth(["bag-eval", str(bag), "--offline", "--text", "x", "--params-file", str(keyed_for_launch),
                      "--json", str(out)]) == 0
    from textdepth_ros.bags.bag_eval import node_parameters
    from textdepth_ros.cli import build_parser

    args = build_parser("bag-eval").parse_args(["bag-eval", str(bag), "--offline", "--params-file", str(keyed_for_launch)])
    assert node_parameters(args)["default_text"] == "a boiler room"
    capsys.readouterr()
    assert textdepth(["bag-eval", str(bag), "--offline", "--params-file", str(keyed_for_launch),
                      "--params-namespace", "/robot2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no entry for /robot2/depth_node" in err[0] and "/textdepth/depth_node" in err[0]
    assert "Traceback" not in "".join(err)
