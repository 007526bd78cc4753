"""Every kind of bad input the node can meet, each followed by a good frame that must
still be served: missing camera_info, unreadable images, frames outside the size
limits, size changes, bad intrinsics, and empty / whitespace / non-UTF-8 / huge /
control-character text, and text at 1 kHz."""
import struct
import time

import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ros_helpers import SMALL_PARAMS, Stamps, camera_info, int_value, module_node_and_client, sample_image
from textdepth_ros.ros.conversions import image_to_numpy, numpy_to_image
from textdepth_ros.ros.depth_node import THROTTLE_S
from textdepth_ros.ros.text_input import CONTEXT_LENGTH

H, W = 64, 80

pytestmark = pytest.mark.timeout(180)


node, client = module_node_and_client(dict(SMALL_PARAMS, default_text="an office"))


def serve_good_frame(client, height=H, width=W, with_cloud=True):
    """A good frame after the bad input: it must come back (with its cloud)."""
    topics = ("depth/image", "points") if with_cloud else ("depth/image",)
    key = client.send_frame(sample_image(height, width), Stamps.take(), info=camera_info(height, width))
    out = client.wait_depth(key, topics=topics)
    assert (out["depth/image"].height, out["depth/image"].width) == (height, width)
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
    return {"unknown encoding": unknown, "depth encoding": not_colour, "data too short": short,
            "step too small": small_step, "empty image": empty}


@pytest.mark.parametrize("kind", list(bad_images()))
def test_unreadable_image_is_skipped_and_counted(client, node, kind):
    msg = bad_images()[kind]
    before = int_value(client.diagnostics, "bad_frames")
    msg.header.stamp.sec = Stamps.take() // 1_000_000_000
    client.pub_image.publish(msg)
    client.spin_until(lambda: int_value(client.diagnostics, "bad_frames") > before, 30, f"'{kind}' to be counted")
    assert (msg.header.stamp.sec, 0) not in client.received["depth/image"]
    serve_good_frame(client)
    assert "image skipped" in node.log()


def out_of_limits():
    huge_claim = numpy_to_image(sample_image(4, 4), "rgb8")  # a header claiming 10^10 pixels
    huge_claim.height, huge_claim.width, huge_claim.step = 100_000, 100_000, 300_000
    # Valid, but the model would pad it to 32x100000: 25 s and 0.9 GB for one frame.
    thin = numpy_to_image(np.zeros((1, 100_000, 3), np.uint8), "rgb8")
    return {"too_large": huge_claim, "too_small": thin}


@pytest.mark.parametrize("kind", list(out_of_limits()))
def test_frames_outside_the_size_limits_are_skipped_and_counted(client, node, kind):
    msg = out_of_limits()[kind]
    before = int_value(client.diagnostics, f"frames_{kind}")
    deadline = time.monotonic() + 60
    while int_value(client.diagnostics, f"frames_{kind}") < before + 3 and time.monotonic() < deadline:
        # One at a time: a burst of 300 KB best-effort messages loses some on the way.
        msg.header.stamp.sec = Stamps.take() // 1_000_000_000
        client.pub_image.publish(msg)
        client.spin_for(0.5)
    assert int_value(client.diagnostics, f"frames_{kind}") >= before + 3, client.diagnostics
    serve_good_frame(client)
    reason = {"too_large": "raise the max_pixels parameter", "too_small": "lower the min_side parameter"}[kind]
    assert node.log().count(reason) == 1, "one rate-limited line for the three"


def test_text_at_1khz_logs_a_few_lines_and_keeps_the_newest(client, node):
    lines_before = node.log().count("scene text:")
    updates_before = int_value(client.diagnostics, "text_updates")
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < 2.0:
        sent += 1
        client.pub_text.publish(String(data=f"room number {sent}"))
        client.executor.spin_once(timeout_sec=0.001)
    elapsed = time.monotonic() - start
    client.send_text(f"room number {sent}", wait=False)
    client.spin_until(lambda: client.diagnostics.get("text") == f"room number {sent}", 30, "the newest text")
    serve_good_frame(client)
    updates = int_value(client.diagnostics, "text_updates") - updates_before
    client.spin_for(THROTTLE_S + 1.5)  # the newest change is logged once the period is over
    lines = node.log().count("scene text:") - lines_before
    print(f"{sent} texts in {elapsed:.1f} s: {updates} applied, {lines} lines")
    assert updates > 10 and lines <= 2 + elapsed / THROTTLE_S, (updates, lines)
    assert f"scene text: 'room number {sent}'" in node.log()  # the newest is logged, if late


def test_image_size_changes_between_frames(client):
    for height, width in [(64, 80), (33, 47), (96, 128), (32, 32), (64, 80)]:
        key = client.send_frame(sample_image(height, width), Stamps.take(), info=camera_info(height, width))
        out = client.wait_depth(key, topics=("depth/image", "points", "depth/camera_info"))
        assert image_to_numpy(out["depth/image"]).shape == (height, width)
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
