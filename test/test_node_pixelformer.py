"""depth_node (a real process, real DDS) with an imported PixelFormer checkpoint as its
`checkpoint` parameter and nothing else: the depth it publishes for a real photo is
PixelFormer's own forward on that frame.

The frame is the photo at 480x640 (921 KB), published reliable as camera drivers do: the
node's input QoS follows its publishers, so it arrives even with Fast DDS's default
profile in this test process (best effort, such a frame did not arrive at all).
"""
import time

import cv2
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from pixelformer_reference import build_reference, save_like_pixelformer
from ros_helpers import SMALL_PARAMS, Stamps, camera_info, connected_client, serving_node
from test_pixelformer_import import PHOTO, read_rgb, reference_depth, relative
from textdepth_ros.cli import main as textdepth
from textdepth_ros.data.nyu import NYU_FOCAL
from textdepth_ros.ros.conversions import image_to_numpy

pytestmark = pytest.mark.timeout(300)
H, W = 480, 640


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pixelformer")
    reference = build_reference("tiny07", max_depth=10.0, seed=6)
    save_like_pixelformer(reference, folder / "nyu.pth")
    out = folder / "pixelformer_nyu.safetensors"
    assert textdepth(["import-pixelformer", "--checkpoint", str(folder / "nyu.pth"), "--out", str(out)]) == 0
    return reference, out


def test_node_publishes_pixelformers_depth_for_a_real_photo(imported):
    reference, checkpoint = imported
    rgb = cv2.resize(read_rgb(PHOTO), (W, H), interpolation=cv2.INTER_AREA)
    params = dict(SMALL_PARAMS, checkpoint=str(checkpoint), warmup_height=H, warmup_width=W)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    with serving_node(params) as node, connected_client(image_qos=reliable) as client:
        client.wait_reliable_image_subscription()  # one frame, not a stream: send it once the node follows
        # NYU's camera, the one the import records: focal scaling (auto) leaves the depth as it is
        info = camera_info(H, W, f=NYU_FOCAL)
        # The node uses the latest camera_info; one frame sent with its own may overtake it
        # (two topics), so the camera is known to the node before the frame.
        client.pub_info.publish(info)
        settled = time.monotonic() + 1.0
        client.spin_until(lambda: time.monotonic() > settled, 5, "the camera_info's head start")
        key = client.send_frame(rgb, Stamps.take(), info=info)
        depth = image_to_numpy(client.wait_depth(key, timeout=180)["depth/image"])
        assert client.diagnostics.get("untrained") == "false"
        assert "pixelformer_tiny07 (baseline)" in node.log()
        assert "focal scaling auto: depth x1.0000" in node.log()
    expected = reference_depth(reference, rgb)
    assert depth.shape == expected.shape == (H, W)
    assert np.isfinite(depth).all() and expected.std() > 0.3
    print(f"node vs PixelFormer at {H}x{W}: relative difference {relative(depth, expected):.1e}")
    assert relative(depth, expected) <= 1e-5
