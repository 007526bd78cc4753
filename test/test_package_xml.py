"""package.xml names everything the package imports at run time (textdepth_ros/ and
launch/), so `rosdep install` brings it; what rosdep must not bring (pip keys, packages
without a key) is pinned in requirements-ros-workspace.txt instead, and docs/install.md
skips exactly those keys. A new import fails here until it is placed."""
import ast
import re
import sys
import xml.etree.ElementTree as ET

from ros_helpers import REPO

# ROS packages the code imports: exec_depend by package name.
ROS_PACKAGES = {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "builtin_interfaces", "rcl_interfaces",
                "rosgraph_msgs", "ament_index_python", "launch", "launch_ros"}
# Other imports -> their rosdep key, or "pip:<name>" where no key exists (then pinned in the
# workspace requirements). Distro (apt) keys where ROS's own packages depend on the same
# module (numpy, opencv) or the distro's build does (yaml, tqdm, PIL, h5py).
PYTHON_IMPORTS = {
    "numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml", "tqdm": "python3-tqdm",
    "PIL": "python3-pil", "h5py": "python3-h5py",
    "timm": "python3-timm-pip", "huggingface_hub": "python3-huggingface-hub-pip",
    "torch.utils.tensorboard": "python3-tensorboard-pip", "rosbags": "python3-rosbags-pip",
    "onnxruntime": "python3-onnxruntime-pip",
    "torch": "pip:torch", "torchvision": "pip:torchvision", "open_clip": "pip:open_clip_torch",
    "safetensors": "pip:safetensors", "onnx": "pip:onnx",
}
# rosdep keys seen in ros/rosdistro rosdep/python.yaml at 8468e88 (2026-08-22), with the pip
# package each "-pip" key installs. A key not listed here must be checked there first.
PIP_KEYS = {"python3-timm-pip": "timm", "python3-huggingface-hub-pip": "huggingface_hub",
            "python3-tensorboard-pip": "tensorboard", "python3-rosbags-pip": "rosbags",
            "python3-onnxruntime-pip": "onnxruntime", "mcap-ros2-support": "mcap-ros2-support"}
APT_KEYS = {"python3-numpy", "python3-opencv", "python3-yaml", "python3-tqdm", "python3-pil", "python3-h5py",
            "python3-pytest", "python3-pytest-timeout"}
FROM_THE_DISTRO = {"rclpy", "numpy", "opencv-python", "opencv-python-headless", "opencv-contrib-python", "pyyaml",
                   "tqdm", "pillow", "h5py"}


def imported_modules() -> dict:
    """Third-party module -> files importing it (imports inside functions count: they run)."""
    found = {}
    for path in sorted([*(REPO / "textdepth_ros").rglob("*.py"), *(REPO / "launch").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "textdepth_ros":
                    continue
                key = name if name in PYTHON_IMPORTS else top
                found.setdefault(key, set()).add(str(path.relative_to(REPO)))
    return found


def package_xml(tag: str) -> set:
    return {e.text.strip() for e in ET.parse(REPO / "package.xml").getroot().iter(tag)}


def workspace_requirements() -> dict:
    """requirements-ros-workspace.txt: {normalized name: version pin}."""
    pins = {}
    for line in (REPO / "requirements-ros-workspace.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)", line)
            pins[normalized(match.group(1))] = match.group(3)
    return pins


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_import_is_an_exec_depend_or_a_pinned_requirement():
    depends, pins = package_xml("exec_depend"), workspace_requirements()
    for module, files in imported_modules().items():
        if module in ROS_PACKAGES:
            assert module in depends, f"{module} (imported by {sorted(files)}) is not an exec_depend in package.xml"
            continue
        assert module in PYTHON_IMPORTS, (
            f"{module} (imported by {sorted(files)}) is new: add its rosdep key to package.xml (if one exists in "
            "ros/rosdistro) or pin it in requirements-ros-workspace.txt, and map it in PYTHON_IMPORTS here")
        key = PYTHON_IMPORTS[module]
        if key.startswith("pip:"):
            assert normalized(key[4:]) in pins, f"{module}: no rosdep key, so {key[4:]} must be pinned"
        else:
            assert key in depends, f"{module} (imported by {sorted(files)}): exec_depend {key} missing"


def test_package_xml_uses_only_keys_that_exist_and_nothing_that_fights_pip():
    declared = package_xml("exec_depend") | package_xml("test_depend")
    unknown = declared - ROS_PACKAGES - {"lifecycle_msgs"} - set(PIP_KEYS) - APT_KEYS
    assert not unknown, f"not checked against ros/rosdistro: {unknown}"
    assert not {"python3-torch", "python3-torchvision"} & declared  # Ubuntu's CPU torch beside pip's


def test_pip_keys_are_pinned_in_the_workspace_requirements_and_skipped_by_the_docs():
    pins = workspace_requirements()
    declared = package_xml("exec_depend") | package_xml("test_depend")
    pip_keys = {key for key in declared if key in PIP_KEYS}
    for key in pip_keys & package_xml("exec_depend"):
        assert pins.get(normalized(PIP_KEYS[key]), "").startswith("=="), f"{key}: pin {PIP_KEYS[key]}== in the file"
    skipped = re.search(r'--skip-keys "([^"]+)"', (REPO / "docs" / "install.md").read_text()).group(1).split()
    assert set(skipped) == pip_keys


def test_workspace_requirements_leave_ros_numpy_and_opencv_to_the_distro():
    pins = workspace_requirements()
    # numpy only as an upper bound that the distro's 1.26 satisfies (nothing installed; no numpy 2)
    assert pins.pop("numpy") == "<2"
    assert pins.pop("setuptools") == ">=77.0.3,<80"  # torch's floor, colcon-core's ceiling
    assert not {name for name in pins if name.startswith("ros-")} | (set(pins) & FROM_THE_DISTRO)
    assert all(pin.startswith("==") for pin in pins.values()), pins
