"""depth_node as a real process over real DDS at 640x480, with a checkpoint trained at
F0 (NYU's focal length): a camera with twice that focal length gets exactly twice the
depth of `focal_scaling: off`, the log says which factor applies, and the decimated
navigation cloud (cloud_stride 4) back-projects the published depth with the published K,
16x smaller than the full cloud.

The frames are camera-sized (921 KB), published reliable as drivers do: the node's inputs
follow their publishers (test_input_qos.py)."""
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile, ReliabilityPolicy

from model_helpers import tiny_model
from ros_helpers import SMALL_PARAMS, Stamps, camera_info, connected_client, sample_image, serving_node
from textdepth_ros.camera_scale import Camera
from textdepth_ros.data.nyu import NYU_FOCAL as F0
from textdepth_ros.model.checkpoint import save_checkpoint
from textdepth_ros.ros.conversions import image_to_numpy
from textdepth_ros.ros.pointcloud import backproject, pointcloud2_to_array

H, W = 480, 640
STRIDE = 4
OUTPUTS = ("depth/image", "depth/camera_info", "depth/uncertainty", "points")
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    checkpoint = save_checkpoint(tmp_path_factory.mktemp("f0") / "f0.safetensors", tiny_model(seed=4),
                                 extra={"camera": Camera(F0, F0, W, H)})
    with serving_node(dict(SMALL_PARAMS, checkpoint=str(checkpoint), cloud_stride=STRIDE)) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(node):
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    with connected_client(image_qos=reliable, outputs=OUTPUTS) as c:
        c.wait_reliable_image_subscription()
        yield c


def set_parameter(client, name, value) -> None:
    remote = AsyncParameterClient(client.node, "/depth_node")
    assert remote.wait_for_services(30)
    future = remote.set_parameters([Parameter(name, value=value)])
    client.spin_until(future.done, 30, f"setting {name}")
    assert future.result().results[0].successful, future.result().results[0].reason


def frame(client, rgb, info) -> dict:
    key = client.send_frame(rgb, Stamps.take(), info=info)
    return client.wait_depth(key, timeout=180, topics=OUTPUTS)


@pytest.fixture(scope="module")
def twice_f0(client):
    """One frame from a camera with fx = fy = 2 F0, under auto and then under off."""
    rgb, info = sample_image(H, W, seed=2), camera_info(H, W, f=2 * F0)
    auto = frame(client, rgb, info)
    set_parameter(client, "focal_scaling", "off")
    try:
        off = frame(client, rgb, info)
    finally:
        set_parameter(client, "focal_scaling", "auto")
    return auto, off


def test_twice_the_training_focal_length_gives_exactly_twice_the_depth(node, twice_f0):
    auto, off = twice_f0
    for topic in ("depth/image", "depth/uncertainty"):
        scaled, plain = image_to_numpy(auto[topic]), image_to_numpy(off[topic])
        assert scaled.shape == (H, W) and np.isfinite(plain).all() and plain.std() > 0
        np.testing.assert_array_equal(scaled, 2 * plain)  # exact: a float32 doubling of the same forward
    log = node.log()
    assert ("focal scaling auto: depth x2.0000 (input focal 1037.72 px at 640x480, vs training camera 518.86 px at "
            "640x480)") in log
    assert "focal scaling off: depth is not rescaled" in log
    assert log.count("depth x2.0000") == 1  # said once, not per frame


def test_the_decimated_cloud_back_projects_the_published_depth_with_the_published_k(twice_f0):
    auto, _ = twice_f0
    depth, info, cloud = image_to_numpy(auto["depth/image"]), auto["depth/camera_info"], auto["points"]
    assert (info.k[0], info.k[4]) == (2 * F0, 2 * F0)
    assert (cloud.height, cloud.width) == (H // STRIDE, W // STRIDE)
    assert len(cloud.data) * STRIDE ** 2 == H * W * cloud.point_step  # 16x fewer bytes than the full cloud
    x, y, z = backproject(depth, info.k[0], info.k[4], info.k[2], info.k[5])
    points = pointcloud2_to_array(cloud)
    for name, full in (("x", x), ("y", y), ("z", z)):
        np.testing.assert_array_equal(points[name], full[::STRIDE, ::STRIDE], err_msg=name)
