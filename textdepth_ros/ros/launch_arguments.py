"""Which launch arguments of launch/depth.launch.py set node parameters, and how.

Precedence, lowest first: the node's defaults, the `params_file` (the package's
config/depth.yaml unless you name your own), then each launch argument you GIVE. A
launch argument left out is "" and sets nothing, so a value in your params file holds
unless you also name it on the command line. Values are typed here (a launch argument is
text): `fp16:=true` becomes a bool, `warmup_height:=720` an integer, so the node's typed
parameters accept them.

No ROS imports: the launch file and the tests import this without a running ROS graph.
"""
import yaml

# name -> (type, description for `ros2 launch ... --show-args`). Every name is a parameter
# of depth_node (use_sim_time: rclpy's own), which test_launch.py checks.
PARAMETER_ARGUMENTS = {
    "model_config": (str, "tiny, paper, or a model YAML path"),
    "checkpoint": (str, "trained checkpoint (.safetensors); relative names are looked up as docs/install.md says"),
    "device": (str, "auto, cpu, cuda or cuda:N"),
    "fp16": (bool, "true/false: half-precision autocast, fp16 on CUDA, bf16 on CPU"),
    "transport": (str, "raw (sensor_msgs/Image on `image`) or compressed (CompressedImage on <image>/compressed)"),
    "default_text": (str, "scene description used until one arrives on `text`"),
    "warmup_height": (int, "warm-up image height: your camera's"),
    "warmup_width": (int, "warm-up image width: your camera's"),
    "use_sim_time": (bool, "true/false: use /clock (a bag played with --clock)"),
}
NOT_GIVEN = ""
NOT_GIVEN_HELP = " (default: not given, the params file's value holds)"


class LaunchArgumentError(ValueError):
    """A launch argument that cannot become its parameter's type."""


def typed(name: str, text: str):
    """The value of launch argument `name` for its parameter: `text` as its type."""
    kind = PARAMETER_ARGUMENTS[name][0]
    if kind is str:
        return text
    value = yaml.safe_load(text)  # what ROS does with a parameter given on a command line
    if kind is bool and isinstance(value, bool) or kind is int and type(value) is int:
        return value
    want = "true or false" if kind is bool else "an integer"
    raise LaunchArgumentError(f"launch argument {name}:={text} is not {want}")


def parameter_overrides(arguments: dict) -> dict:
    """{parameter: typed value} for the parameter arguments that were given (not "")."""
    return {name: typed(name, text) for name, text in arguments.items()
            if name in PARAMETER_ARGUMENTS and text != NOT_GIVEN}
