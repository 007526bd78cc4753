"""depth_node as a real process over real DDS: outputs, intrinsics, text, flood.

One node serves the whole module (start-up costs seconds); each test waits for
conditions instead of sleeping, since the machine is shared and noisy.
"""
import time

import numpy as np
import pytest
import rclpy

from ros_helpers import SMALL_PARAMS, camera_info, int_value, module_node_and_client, sample_image
from textdepth_ros.ros.conversions import image_to_numpy
from textdepth_ros.ros.pointcloud import backproject, pointcloud2_to_array

H, W = 96, 128
MAX_RANGE = 5.0  # the untrained tiny model predicts ~4-6 m: about half the cloud is cut

pytestmark = pytest.mark.timeout(180)


node, client = module_node_and_client(dict(SMALL_PARAMS, max_range=MAX_RANGE, default_text="a room"))


def test_round_trip_depth_info_cloud(client):
    rgb = sample_image(H, W)
    info = camera_info(H, W, f=100.0)
    key = client.send_frame(rgb, 1_000_000_123, info=info, frame_id="cam_optical")
    out = client.wait_depth(key, topics=("depth/image", "depth/camera_info", "depth/uncertainty", "points"))
    depth_msg = out["depth/image"]
    assert depth_msg.header.frame_id == "cam_optical"
    assert (depth_msg.header.stamp.sec, depth_msg.header.stamp.nanosec) == (1, 123)
    assert (depth_msg.height, depth_msg.width, depth_msg.encoding) == (H, W, "32FC1")
    depth = image_to_numpy(depth_msg)
    assert np.isfinite(depth).all() and (depth > 0).all()
    assert image_to_numpy(out["depth/uncertainty"]).shape == (H, W)

    ci = out["depth/camera_info"]
    assert ci.header.frame_id == "cam_optical" and (ci.height, ci.width) == (H, W)
    np.testing.assert_allclose(ci.k, info.k)

    cloud = out["points"]
    assert (cloud.height, cloud.width, cloud.is_dense) == (H, W, False)
    assert cloud.header.frame_id == "cam_optical"
    points = pointcloud2_to_array(cloud)
    cut = np.where(depth <= MAX_RANGE, depth, np.float32(np.nan))  # max_range applies to the cloud
    x, y, z = backproject(cut, info.k[0], info.k[4], info.k[2], info.k[5])
    np.testing.assert_array_equal(points["x"], x)  # exact: same float32 operations
    np.testing.assert_array_equal(points["y"], y)
    np.testing.assert_array_equal(points["z"], z)
    invalid = ~(depth <= MAX_RANGE)
    assert invalid.any() or (depth <= MAX_RANGE).all()
    assert np.isnan(points["x"][invalid]).all() and np.isfinite(points["x"][~invalid]).all()
    colours = points["rgb"].view(np.uint32)
    expected = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    np.testing.assert_array_equal(colours, expected)


def test_camera_info_of_another_resolution_is_scaled(client):
    info = camera_info(H // 2, W // 2, f=50.0)  # calibrated at half the image size
    key = client.send_frame(sample_image(H, W), 2_000_000_000, info=info)
    ci = client.wait_depth(key, topics=("depth/camera_info",))["depth/camera_info"]
    assert (ci.height, ci.width) == (H, W)
    assert ci.k[0] == pytest.approx(100.0) and ci.k[4] == pytest.approx(100.0)
    assert ci.k[2] == pytest.approx(2 * info.k[2]) and ci.k[5] == pytest.approx(2 * info.k[5])
    assert ci.p[0] == pytest.approx(100.0)


@pytest.mark.parametrize("roi,binning,expected", [
    ((64, 48, W, H), (0, 0), (200.0, 200.0, 63.5, 47.5)),  # the 96x128 ROI at (64, 48) of a 192x256 calibration
    ((0, 0, 0, 0), (2, 2), (100.0, 100.0, 63.75, 47.75)),  # the whole sensor, binned 2x2
])
def test_camera_info_roi_and_binning_are_applied(client, roi, binning, expected):
    """The camera's CameraInfo describes a 192x256 calibration (f = 200, centre 127.5,
    95.5); the image is its ROI or its 2x2 binning. depth/camera_info describes the
    depth image itself (roi and binning applied and cleared), and the cloud uses it."""
    info = camera_info(2 * H, 2 * W, f=200.0)
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = roi
    info.binning_x, info.binning_y = binning
    key = client.send_frame(sample_image(H, W), 4_000_000_000 + binning[0], info=info)
    out = client.wait_depth(key, topics=("depth/image", "depth/camera_info", "points"))
    ci = out["depth/camera_info"]
    fx, fy, cx, cy = expected
    assert (ci.k[0], ci.k[4], ci.k[2], ci.k[5]) == (fx, fy, cx, cy)
    assert (ci.p[0], ci.p[5], ci.p[2], ci.p[6]) == (fx, fy, cx, cy)
    assert (ci.height, ci.width, ci.binning_x, ci.binning_y) == (H, W, 0, 0)
    assert (ci.roi.x_offset, ci.roi.y_offset, ci.roi.width, ci.roi.height) == (0, 0, 0, 0)
    depth = np.where(image_to_numpy(out["depth/image"]) <= MAX_RANGE, image_to_numpy(out["depth/image"]), np.float32(np.nan))
    x, y, _ = backproject(depth, fx, fy, cx, cy)
    points = pointcloud2_to_array(out["points"])
    np.testing.assert_array_equal(points["x"], x)
    np.testing.assert_array_equal(points["y"], y)


def test_preview_only_when_watched(client):
    client.spin_until(lambda: client.node.count_subscribers("depth/preview") > 0, 30, "preview subscription")
    key = client.send_frame(sample_image(H, W), 3_000_000_000, info=camera_info(H, W))
    preview = client.wait_depth(key, topics=("depth/image", "depth/preview"))["depth/preview"]
    assert (preview.encoding, preview.height, preview.width) == ("rgb8", H, W)


def depth_and_encoder_calls(client, rgb, stamp_ns):
    """Depth of one frame and the node's encoder-call count once it has counted that frame."""
    target = int_value(client.diagnostics, "frames_published") + 1
    key = client.send_frame(rgb, stamp_ns, info=camera_info(H, W))
    depth = image_to_numpy(client.wait_depth(key)["depth/image"])
    client.spin_until(lambda: int_value(client.diagnostics, "frames_published") >= target,
                      60, "diagnostics to count the frame")
    return depth, int_value(client.diagnostics, "encoder_calls")


def test_text_change_changes_output_and_repeats_do_not_reencode(client):
    rgb = sample_image(H, W, seed=3)

    def run(text, stamp_ns):
        client.send_text(text)
        return depth_and_encoder_calls(client, rgb, stamp_ns)

    kitchen, calls_kitchen = run("a small kitchen with a table", 10_000_000_000)
    corridor, calls_corridor = run("a long dark corridor", 11_000_000_000)
    assert calls_corridor == calls_kitchen + 1  # exactly one encoder call for a new text
    assert not np.array_equal(kitchen, corridor)  # the text reaches the depth
    again, calls_again = run("a long dark corridor", 12_000_000_000)  # same text re-published
    assert calls_again == calls_corridor
    np.testing.assert_array_equal(again, corridor)
    back, calls_back = run("a small kitchen with a table", 13_000_000_000)  # cached earlier text
    assert calls_back == calls_corridor
    np.testing.assert_array_equal(back, kitchen)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_flood_keeps_latency_bounded_and_counts_drops(client, node):
    rgb = sample_image(H, W, seed=5)
    info = camera_info(H, W)
    client.spin_until(lambda: int_value(client.diagnostics, "frames_received")
                      == int_value(client.diagnostics, "frames_published")
                      + int_value(client.diagnostics, "frames_dropped"), 60, "the node to be idle")
    before = dict(client.diagnostics)
    rss_before = rss_kib(node.proc.pid)
    sent = {}
    start = time.monotonic()
    stamp = 100_000_000_000
    while time.monotonic() - start < 6.0:  # far faster than the model: ~200 Hz offered
        stamp += 1_000_000
        sent[client.send_frame(rgb, stamp, info=info)] = time.monotonic()
        client.executor.spin_once(timeout_sec=0.005)
    flood_outputs = [(t, k) for t, k in client.arrivals if k in sent]
    client.spin_until(lambda: int_value(client.diagnostics, "frames_received")
                      == int_value(client.diagnostics, "frames_published")
                      + int_value(client.diagnostics, "frames_dropped")
                      + int_value(client.diagnostics, "bad_frames")
                      and int_value(client.diagnostics, "frames_received") > int_value(before, "frames_received"),
                      60, "the node to settle after the flood")
    after = dict(client.diagnostics)
    received = int_value(after, "frames_received") - int_value(before, "frames_received")
    dropped = int_value(after, "frames_dropped") - int_value(before, "frames_dropped")
    published = int_value(after, "frames_published") - int_value(before, "frames_published")
    print(f"flood: offered {len(sent)}, node received {received}, published {published}, dropped {dropped}")
    assert len(flood_outputs) >= 3, "outputs must keep coming during the flood"
    assert dropped > 0 and received == published + dropped
    # A growing queue would make late outputs many seconds old; the newest-frame slot keeps
    # each output about one forward pass behind. Generous bound for a busy shared machine.
    ages = [t - sent[k] for t, k in flood_outputs]
    assert max(ages) < 5.0, f"output ages grew: {ages[-5:]}"
    assert rss_kib(node.proc.pid) - rss_before < 200 * 1024, "node memory grew under flood"


def image_transport_camera_info_topic(image_topic: str) -> str:
    """image_transport's getCameraInfoTopic (camera_common.cpp), for a resolved name: the
    image topic's namespace + `camera_info`."""
    return "".join("/" + part for part in image_topic.split("/")[:-1] if part) + "/camera_info"


def test_every_image_pairs_with_its_camera_info_the_image_transport_way(client):
    """As depth_image_proc's point_cloud_xyz, RViz's DepthCloud or rtabmap see the node: each
    image it publishes, remapped to a consumer's `image_rect`, has its CameraInfo on the
    sibling topic image_transport derives (published by the node itself, not the camera's
    own camera_info), with the same header and size, matched by stamp."""
    from sensor_msgs.msg import CameraInfo, Image

    images = sorted(name for name, types in client.node.get_publisher_names_and_types_by_node("depth_node", "/")
                    if "sensor_msgs/msg/Image" in types)
    assert len(images) == 3, images  # depth, uncertainty, preview
    consumers, received = [], {}
    for i, image_topic in enumerate(images):
        consumer = rclpy.create_node(
            f"point_cloud_xyz_{i}", namespace="/consumer", context=client.context,
            cli_args=["--ros-args", "-r", f"image_rect:={image_topic}"])
        resolved = consumer.resolve_topic_name("image_rect")
        info_topic = image_transport_camera_info_topic(resolved)
        publishers = {p.node_name for p in client.node.get_publishers_info_by_topic(info_topic)}
        assert publishers == {"depth_node"}, f"{resolved} -> {info_topic} is published by {publishers or 'nobody'}"
        pairs = received[resolved] = {"image": {}, "info": {}}
        consumer.create_subscription(Image, "image_rect", lambda m, p=pairs: p["image"].setdefault(stamp(m), m), 10)
        consumer.create_subscription(CameraInfo, info_topic, lambda m, p=pairs: p["info"].setdefault(stamp(m), m), 10)
        client.executor.add_node(consumer)
        consumers.append(consumer)
    try:
        client.spin_until(lambda: all(consumers[0].count_publishers(t) for t in received), 30, "consumers to connect")
        client.spin_until(lambda: all(client.node.count_subscribers(t) for t in images), 30, "the node to see them")
        key = client.send_frame(sample_image(H, W, seed=7), 20_000_000_000, info=camera_info(H, W, f=90.0),
                                frame_id="cam_optical")
        client.spin_until(lambda: all(key in p["image"] and key in p["info"] for p in received.values()), 60,
                          "every image and its camera_info")
    finally:
        for consumer in consumers:
            client.executor.remove_node(consumer)
            consumer.destroy_node()
    for topic, pairs in received.items():
        image, info = pairs["image"][key], pairs["info"][key]
        assert image.header == info.header, topic
        assert (info.height, info.width) == (image.height, image.width) == (H, W), topic
        assert info.k[0] == 90.0, topic


def stamp(msg) -> tuple:
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)
