"""launch/depth.launch.py, checked statically (test_ros2_launch.py runs it for real): it parses,
declares its arguments, gives a parameter argument to the node only when it was given (typed), starts an executable setup.py really installs with
a YAML that really ships, remaps the node's real input names; and the plain executable
started the way the launch file would start it (same YAML, namespace, remaps) works."""
import ast

import numpy as np
import pytest
import yaml

from ros_helpers import REPO, Client, NodeProcess, camera_info, sample_image
from textdepth_ros.ros.conversions import image_to_numpy
from textdepth_ros.ros.depth_node import NODE_NAME, PARAMETERS
from textdepth_ros.ros.launch_arguments import (NOT_GIVEN, PARAMETER_ARGUMENTS, LaunchArgumentError,
                                                parameter_overrides)

LAUNCH = REPO / "launch" / "depth.launch.py"
YAML = REPO / "config" / "depth.yaml"
TOPIC_ARGUMENTS = {"namespace", "image", "camera_info", "text", "params_file", "managed"}


def calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def keyword(call, name):
    return next(k.value for k in call.keywords if k.arg == name)


@pytest.fixture(scope="module")
def tree():
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def test_launch_file_declares_its_arguments_and_uses_each(tree):
    declared = {c.args[0].value for c in calls(tree, "DeclareLaunchArgument") if isinstance(c.args[0], ast.Constant)}
    assert declared == TOPIC_ARGUMENTS
    used = {c.args[0].value for c in calls(tree, "LaunchConfiguration") if isinstance(c.args[0], ast.Constant)}
    assert used == declared, "every argument is used, and nothing undeclared is"
    # ... and one DeclareLaunchArgument per parameter argument, each read back by name
    assert "for name, (_, text) in PARAMETER_ARGUMENTS.items()" in LAUNCH.read_text()
    assert "for name in PARAMETER_ARGUMENTS" in LAUNCH.read_text()
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def test_parameter_arguments_are_node_parameters_of_the_same_type():
    for name, (kind, _) in PARAMETER_ARGUMENTS.items():
        if name == "use_sim_time":  # rclpy declares it on every node
            continue
        assert type(PARAMETERS[name].default) is kind, name


def test_only_given_arguments_become_overrides_and_they_are_typed():
    given = {name: NOT_GIVEN for name in PARAMETER_ARGUMENTS}
    assert parameter_overrides(given) == {}  # `params_file:=` alone: the file's values hold
    given.update(fp16="false", warmup_height="720", transport="compressed", default_text="true", use_sim_time="True")
    assert parameter_overrides(given) == {"fp16": False, "warmup_height": 720, "transport": "compressed",
                                          "default_text": "true", "use_sim_time": True}
    for name, text in (("fp16", "maybe"), ("warmup_height", "7.5"), ("warmup_width", "false")):
        with pytest.raises(LaunchArgumentError, match=f"{name}:={text} is not"):
            parameter_overrides({name: text})


def node_settings(tree):
    """The keyword arguments both node actions share (`common = dict(...)`)."""
    (common,) = calls(tree, "dict")
    return common


def test_launch_node_names_an_installed_executable_and_shipped_files(tree):
    executables = {keyword(c, "executable").value for name in ("Node", "LifecycleNode") for c in calls(tree, name)}
    assert executables == {"depth_node", "managed_depth_node"}
    node = node_settings(tree)
    assert keyword(node, "name").value == NODE_NAME
    setup = ast.parse((REPO / "setup.py").read_text())
    scripts = {s.value for s in ast.walk(setup) if isinstance(s, ast.Constant) and isinstance(s.value, str)
               and s.value.split(" =")[0] in executables}
    assert scripts == {"depth_node = textdepth_ros.ros.depth_node:main",
                       "managed_depth_node = textdepth_ros.ros.lifecycle_node:main"}
    # The YAML path is joined from the share directory: config/depth.yaml, installed by setup.py.
    (join,) = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and getattr(c.func, "attr", None) == "join"]
    relative = "/".join(a.value for a in join.args[1:])
    assert relative == "config/depth.yaml" and (REPO / relative).is_file()
    assert 'glob("config/*.yaml")' in (REPO / "setup.py").read_text()  # installed into share/
    remapped = {t.elts[0].value for t in keyword(node, "remappings").elts}
    assert remapped == {"image", "camera_info", "text"}


def test_yaml_sets_every_node_parameter_and_nothing_else():
    params = yaml.safe_load(YAML.read_text())["/**/" + NODE_NAME]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    for name, value in params.items():
        default = PARAMETERS[name].default
        assert type(value) is type(default) or (isinstance(default, float) and isinstance(value, (int, float))), name


@pytest.mark.timeout(150)
def test_plain_executable_with_the_same_yaml_behaves_like_the_launch_file(tmp_path):
    """What `ros2 launch textdepth_ros depth.launch.py` runs, with its default arguments: the
    shipped YAML and no parameter on top of it."""
    remaps = {"image": "/camera/color/image_raw", "camera_info": "/camera/color/camera_info", "text": "/scene_text"}
    proc = NodeProcess(None, params_file=YAML, namespace="/textdepth", remaps=remaps, log_path=tmp_path / "node.log")
    client = None
    try:
        proc.wait_ready(120)
        client = Client(namespace="textdepth", inputs=remaps, outputs=("depth/image", "points", "depth/camera_info"))
        client.wait_connected()
        client.send_text("a garage with a car")
        key = client.send_frame(sample_image(48, 64), 7_000_000_000, info=camera_info(48, 64))
        out = client.wait_depth(key, topics=("depth/image", "points", "depth/camera_info"))
        assert image_to_numpy(out["depth/image"]).shape == (48, 64)
        assert np.isfinite(image_to_numpy(out["depth/image"])).all()
        assert client.diagnostics["untrained"] == "true"
    finally:
        if client is not None:
            client.close()
        code = proc.interrupt()
        proc.cleanup()
    assert code == 0, proc.log()
    assert "warm-up forward 480x640" in proc.log()  # the YAML's values were applied
