"""Launch depth_node with the package's config/depth.yaml and your camera's topics.

    ros2 launch textdepth_ros depth.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info text:=/scene_text \
        checkpoint:=/path/to/model.safetensors device:=cuda fp16:=true

Outputs (`depth`, `depth/camera_info`, `depth/uncertainty`, `points`, `depth/preview`)
appear under the namespace (default /textdepth). `managed:=true` starts the lifecycle
variant instead, which waits for `configure` and `activate` (a lifecycle manager, or
`ros2 lifecycle set /textdepth/depth_node configure`).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "textdepth_ros"


def generate_launch_description():
    params_file = os.path.join(get_package_share_directory(PACKAGE), "config", "depth.yaml")
    arguments = [
        DeclareLaunchArgument("namespace", default_value="textdepth", description="namespace of the node and its outputs"),
        DeclareLaunchArgument("image", default_value="/camera/color/image_raw", description="RGB image topic"),
        DeclareLaunchArgument("camera_info", default_value="/camera/color/camera_info", description="CameraInfo of that image"),
        DeclareLaunchArgument("text", default_value="/scene_text", description="std_msgs/String scene description topic"),
        DeclareLaunchArgument("params_file", default_value=params_file, description="node parameters (YAML)"),
        DeclareLaunchArgument("model_config", default_value="tiny", description="tiny, paper, or a model YAML path"),
        DeclareLaunchArgument("checkpoint", default_value="", description="trained checkpoint (empty: untrained weights)"),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu, cuda or cuda:N"),
        DeclareLaunchArgument("fp16", default_value="false",
                              description="half-precision autocast: fp16 on CUDA, bf16 on CPU"),
        DeclareLaunchArgument("managed", default_value="false",
                              description="lifecycle node: loads the model on configure, serves on activate"),
    ]
    common = dict(
        package=PACKAGE,
        name="depth_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {  # typed, so that an empty checkpoint stays "" and fp16 becomes a bool
                "model_config": ParameterValue(LaunchConfiguration("model_config"), value_type=str),
                "checkpoint": ParameterValue(LaunchConfiguration("checkpoint"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "fp16": ParameterValue(LaunchConfiguration("fp16"), value_type=bool),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("camera_info", LaunchConfiguration("camera_info")),
            ("text", LaunchConfiguration("text")),
        ],
    )
    managed = LaunchConfiguration("managed")
    plain = Node(executable="depth_node", condition=UnlessCondition(managed), **common)
    lifecycle = LifecycleNode(executable="managed_depth_node", condition=IfCondition(managed), **common)
    return LaunchDescription(arguments + [plain, lifecycle])
