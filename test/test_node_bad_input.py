"""Every kind of bad input the node can meet, each followed by a good frame that must
still be served: missing camera_info, unreadable images, size changes, bad intrinsics,
and empty / whitespace / non-UTF-8 / huge / control-character text."""
import struct

import numpy as np
import pytest
from sensor_msgs.msg import Image

from ros_helpers import SMALL_PARAMS, connected_client, serving_node, camera_info, int_value, sample_image
from textdepth_ros.ros.conversions import image_to_numpy, numpy_to_image
from textdepth_ros.ros.text_input import CONTEXT_LENGTH

H, W = 64, 80

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def node():
    with serving_node(dict(SMALL_PARAMS, default_text="an office")) as proc:
        yield proc
    assert "Traceback" not in proc.log()


@pytest.fixture(scope="module")
def client(node):
    with connected_client() as c:
        yield c


class Stamps:
    next_ns = 1_000_000_000

    @classmethod
    def take(cls):
        cls.next_ns += 1_000_000_000
        return cls.next_ns


def serve_good_frame(client, height=H, width=W, with_cloud=True):
    """A good frame after the bad input: it must come back (with its cloud)."""
    topics = ("depth", "points") if with_cloud else ("depth",)
    key = client.send_frame(sample_image(height, width), Stamps.take(), info=camera_info(height, width))
    out = client.wait_depth(key, topics=topics)
    assert (out["depth"].height, out["depth"].width) == (height, width)
    return key


def test_missing_camera_info_publishes_depth_without_cloud(client, node):
    # First test on a fresh node: no camera_info has ever been sent.
    key = client.send_frame(sample_image(H, W), Stamps.take(), info=None)
    client.wait_depth(key)
    client.spin_until(lambda: int_value(client.diagnostics, "frames_without_camera_info") >= 1, 30, "the count")
    serve_good_frame(client)  # reliable, in-order publisher: a later cloud arriving means none came for key
    assert key not in client.received["points"] and key not in client.received["depth/camera_info"]
    assert "no camera_info received yet" in node.log()


def bad_images():
    good = numpy_to_image(sample_image(H, W), "rgb8")
    unknown = numpy_to_image(sample_image(H, W), "rgb8")
    unknown.encoding = "yuv422_weird"
    not_colour = numpy_to_image(np.ones((H, W), np.float32), "32FC1")
    short = numpy_to_image(sample_image(H, W), "rgb8")
    short.data = bytes(good.data)[: len(good.data) // 2]
    small_step = numpy_to_image(sample_image(H, W), "rgb8")
    small_step.step = W
    empty = Image(encoding="rgb8")
    huge_claim = numpy_to_image(sample_image(4, 4), "rgb8")
    huge_claim.height, huge_claim.width, huge_claim.step = 100_000, 100_000, 300_000
    return {"unknown encoding": unknown, "depth encoding": not_colour, "data too short": short,
            "step too small": small_step, "empty image": empty, "huge claimed size": huge_claim}


@pytest.mark.parametrize("kind", list(bad_images()))
def test_unreadable_image_is_skipped_and_counted(client, node, kind):
    msg = bad_images()[kind]
    before = int_value(client.diagnostics, "bad_frames")
    msg.header.stamp.sec = Stamps.take() // 1_000_000_000
    client.pub_image.publish(msg)
    client.spin_until(lambda: int_value(client.diagnostics, "bad_frames") > before, 30, f"'{kind}' to be counted")
    assert (msg.header.stamp.sec, 0) not in client.received["depth"]
    serve_good_frame(client)
    assert "image skipped" in node.log()


def test_image_size_changes_between_frames(client):
    for height, width in [(64, 80), (33, 47), (96, 128), (1, 1), (64, 80)]:
        key = client.send_frame(sample_image(height, width), Stamps.take(), info=camera_info(height, width))
        out = client.wait_depth(key, topics=("depth", "points", "depth/camera_info"))
        assert image_to_numpy(out["depth"]).shape == (height, width)
        assert (out["points"].height, out["points"].width) == (height, width)
        assert (out["depth/camera_info"].height, out["depth/camera_info"].width) == (height, width)


@pytest.mark.parametrize("bad_k", ["zeros", "nan", "negative"])
def test_bad_intrinsics_publish_depth_but_no_cloud(client, node, bad_k):
    info = camera_info(H, W)
    k = list(info.k)
    if bad_k == "zeros":
        k = [0.0] * 9
    elif bad_k == "nan":
        k[0] = float("nan")
    else:
        k[4] = -100.0
    info.k = k
    before = int_value(client.diagnostics, "frames_with_bad_intrinsics")
    key = client.send_frame(sample_image(H, W), Stamps.take(), info=info)
    client.wait_depth(key)
    client.spin_until(lambda: int_value(client.diagnostics, "frames_with_bad_intrinsics") > before, 30, "the count")
    serve_good_frame(client)
    assert key not in client.received["points"]
    assert "unusable intrinsics" in node.log()


def raw_string(payload: bytes) -> bytes:
    """A std_msgs/String serialized by hand (CDR), so the bytes need not be UTF-8."""
    return b"\x00\x01\x00\x00" + struct.pack("<I", len(payload) + 1) + payload + b"\x00"


def test_empty_and_whitespace_text_keep_the_previous(client):
    client.send_text("a bedroom with a bed")
    for text in ["", "   \n\t  "]:
        client.send_text(text, wait=False)
        serve_good_frame(client)
        assert client.diagnostics["text"] == "a bedroom with a bed"


def test_non_utf8_text_is_repaired(client, node):
    client.pub_text.publish(raw_string(b"a \xff\xfe kitchen \xc3"))
    client.spin_until(lambda: client.diagnostics.get("text") == "a kitchen", 30, "repaired text")
    serve_good_frame(client)
    assert "invalid UTF-8" in node.log()


def test_control_characters_are_removed(client):
    client.pub_text.publish(raw_string(b"a\x01 living\x1b[31m room"))
    client.spin_until(lambda: client.diagnostics.get("text") == "a living [31m room", 30, "cleaned text")
    serve_good_frame(client)


def test_huge_text_is_truncated_to_the_token_limit(client, node):
    from open_clip import get_tokenizer

    huge = "a very long description of a cluttered garage " * 20_000  # ~1 MB
    client.send_text(huge, wait=False)
    client.spin_until(lambda: client.diagnostics.get("text", "").startswith("a very long"), 60, "truncated text")
    assert len(get_tokenizer("ViT-L-14").encode(client.diagnostics["text"])) + 2 <= CONTEXT_LENGTH
    serve_good_frame(client)
    assert "truncated" in node.log()
