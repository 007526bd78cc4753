"""Launch depth_node for your camera (or, with managed:=true, its lifecycle variant).

    ros2 launch textdepth_ros depth.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info text:=/scene_text \
        params_file:=/path/to/my_params.yaml

Parameters, lowest first: the node's defaults; `params_file` (default: the package's
config/depth.yaml); then each of model_config, checkpoint, device, fp16, transport,
default_text, warmup_height, warmup_width, use_sim_time that you GIVE on the command line
(e.g. `device:=cpu`). Those left out set nothing: the values in your params file hold.
A compressed camera stream: `transport:=compressed` with `image:=` at the base topic
(the node then subscribes <image>/compressed, as image_transport names it).

Outputs, under the namespace (default /textdepth), in image_transport's layout (each
image's CameraInfo is the sibling topic `camera_info`):
    depth/image         sensor_msgs/Image 32FC1, metres
    depth/camera_info   sensor_msgs/CameraInfo of the depth image
    depth/uncertainty   sensor_msgs/Image 32FC1, metres
    depth/preview       sensor_msgs/Image rgb8, for people
    points              sensor_msgs/PointCloud2, organized, in the camera's optical frame

Consumers find depth/camera_info by themselves. depth_image_proc's point cloud (this
node publishes `points` too; this is for pipelines built on depth_image_proc):
    ros2 run depth_image_proc point_cloud_xyz_node --ros-args \
        -r image_rect:=/textdepth/depth/image -r points:=/textdepth/points_xyz
RViz: PointCloud2 display on /textdepth/points; Image display on /textdepth/depth/preview
(or depth/image); DepthCloud display with depth topic /textdepth/depth/image (its
camera_info is found the same way). Fixed frame: the camera's optical frame or a frame
tf connects to it.

`managed:=true` starts the lifecycle variant, which waits for `configure` and `activate`
(a lifecycle manager, or `ros2 lifecycle set /textdepth/depth_node configure`).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from textdepth_ros.ros.launch_arguments import NOT_GIVEN, NOT_GIVEN_HELP, PARAMETER_ARGUMENTS, parameter_overrides

PACKAGE = "textdepth_ros"


def start_node(context):
    """The node, with the params file first and only the launch arguments given on top."""
    values = {name: LaunchConfiguration(name).perform(context) for name in PARAMETER_ARGUMENTS}
    common = dict(
        package=PACKAGE,
        name="depth_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), parameter_overrides(values)],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("camera_info", LaunchConfiguration("camera_info")),
            ("text", LaunchConfiguration("text")),
        ],
    )
    if IfCondition(LaunchConfiguration("managed")).evaluate(context):  # true/false/1/0, else a launch error
        return [LifecycleNode(executable="managed_depth_node", **common)]
    return [Node(executable="depth_node", **common)]


def generate_launch_description():
    params_file = os.path.join(get_package_share_directory(PACKAGE), "config", "depth.yaml")
    arguments = [
        DeclareLaunchArgument("namespace", default_value="textdepth", description="namespace of the node and its outputs"),
        DeclareLaunchArgument("image", default_value="/camera/color/image_raw", description="RGB image topic"),
        DeclareLaunchArgument("camera_info", default_value="/camera/color/camera_info", description="CameraInfo of that image"),
        DeclareLaunchArgument("text", default_value="/scene_text", description="std_msgs/String scene description topic"),
        DeclareLaunchArgument("params_file", default_value=params_file, description="node parameters (YAML)"),
        DeclareLaunchArgument("managed", default_value="false",
                              description="lifecycle node: loads the model on configure, serves on activate"),
    ]
    arguments += [DeclareLaunchArgument(name, default_value=NOT_GIVEN, description=text + NOT_GIVEN_HELP)
                  for name, (_, text) in PARAMETER_ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=start_node)])
