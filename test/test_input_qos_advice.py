"""What the lost-message warning tells a user to do: the large-image fix (the sender's
shared-memory segment, see the README section it names) only for images; small
messages (camera_info, text) get the advice that fits them."""
import re

import rclpy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from ros_helpers import REPO
from textdepth_ros.ros.fastdds_profile import ENV_VAR
from textdepth_ros.ros.input_qos import LARGE_IMAGES, AdaptiveInput


def test_the_section_the_warning_names_exists():
    """LARGE_IMAGES is "<file> '<heading>'" (README, or a page under docs/)."""
    name, heading = re.fullmatch(r"(\S+) '(.+)'", LARGE_IMAGES).groups()
    page = REPO / ("README.md" if name == "README" else name)
    assert re.search(rf"^#+ {re.escape(heading)}\s*$", page.read_text(), re.M), LARGE_IMAGES


def test_losses_on_small_topics_do_not_get_the_large_image_fix():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("lost_advice_test", context=context)
        lines = {}
        for msg_type, topic in ((Image, "image"), (CompressedImage, "image/compressed"), (CameraInfo, "camera_info"),
                                (String, "text")):
            watched = AdaptiveInput(node, msg_type, topic, lambda msg: None)
            watched.lost, watched.received = 3, 7  # as the message_lost event counts them
            lines[topic] = watched._lost_message([])
            watched.destroy()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    for topic in ("image", "image/compressed"):
        assert f"{ENV_VAR}=" in lines[topic] and LARGE_IMAGES in lines[topic], lines[topic]
    for topic in ("camera_info", "text"):
        line = lines[topic]
        assert "3 message(s) lost" in line and ENV_VAR not in line and "segment" not in line, line
        assert "these messages are small" in line and "make the publisher reliable" in line, line
