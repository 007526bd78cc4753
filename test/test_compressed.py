"""Compressed input as robots record it: image_transport's `compressed` (jpeg, png) and
`compressedDepth` (png), decoded exactly; depth_node with `transport: compressed` over
real DDS, bad compressed data one rate-limited line while the node keeps serving;
make-bag writing compressed colour / compressedDepth and bag-eval reading them, offline
and live (the same scores as the raw bag, png being lossless)."""
import math
import struct
import time
import zlib

import numpy as np

import pytest
from sensor_msgs.msg import CompressedImage

from hostile_images import hdr, pam, pfm
from bag_helpers import H, W, ProcessGroup, load_json, make_checkpoint, textdepth_cmd
from ros_helpers import SMALL_PARAMS, Client, camera_info, int_value, sample_image, serving_node
from textdepth_ros.cli import main as textdepth
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.metrics import METRIC_NAMES
from textdepth_ros.ros.compressed import (compressed_to_rgb8, decode_compressed_depth, encode_color,
                                          encode_compressed_depth)
from textdepth_ros.ros.conversions import image_to_numpy

pytestmark = pytest.mark.timeout(300)


def compressed(fmt, data, stamp_ns=0):
    msg = CompressedImage(format=fmt)
    msg.data = bytes(data)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = "camera_optical"
    return msg


# ------------------------------------------------------------------ codecs
def test_png_colour_round_trips_exactly_and_jpeg_closely():
    rgb = sample_image(48, 64)
    assert np.array_equal(compressed_to_rgb8(compressed(*encode_color(rgb, "png"))), rgb)
    jpeg = compressed_to_rgb8(compressed(*encode_color(rgb, "jpeg", 95)))
    error, swapped = np.abs(jpeg.astype(int) - rgb).mean(), np.abs(jpeg[:, :, ::-1].astype(int) - rgb).mean()
    assert jpeg.shape == rgb.shape and error < 12 < 3 * 12 < swapped  # lossy, but RGB stays RGB
    assert compressed_to_rgb8(compressed("jpeg", encode_color(rgb, "jpeg")[1])).shape == rgb.shape  # plain "jpeg"


def test_compressed_depth_16uc1_exact_and_32fc1_within_quantization():
    rng = np.random.default_rng(3)
    mm = rng.integers(0, 9000, (48, 64)).astype(np.uint16)
    array, encoding = decode_compressed_depth(compressed(*encode_compressed_depth(mm, "16UC1")))
    assert encoding == "16UC1" and np.array_equal(array, mm)
    metres = rng.uniform(0.3, 9.5, (48, 64)).astype(np.float32)
    metres[:3] = np.nan
    array, encoding = decode_compressed_depth(compressed(*encode_compressed_depth(metres, "32FC1")))
    assert encoding == "32FC1" and np.isnan(array[:3]).all()
    # inverse-depth quantization (compressed_depth_image_transport's defaults): error grows with depth^2
    assert np.all(np.abs(array[3:] - metres[3:]) <= metres[3:] ** 2 / (100.0 * 101.0) * 1.01 + 1e-6)


@pytest.mark.parametrize("fmt, data, message", [
    ("jpeg", b"\xff\xd8 definitely not a jpeg", "could not be decoded"),
    ("jpeg", b"", "could not be decoded"),
    ("rgb8; tiff compressed", b"xx", "unsupported compressed image format"),
])
def test_bad_compressed_colour_is_a_value_error(fmt, data, message):
    with pytest.raises(ValueError, match=message):
        compressed_to_rgb8(compressed(fmt, data))


def test_bad_compressed_depth_is_a_value_error():
    with pytest.raises(ValueError, match="rvl"):
        decode_compressed_depth(compressed("16UC1; compressedDepth rvl", b"\x00" * 40))
    with pytest.raises(ValueError, match="no image"):
        decode_compressed_depth(compressed("16UC1; compressedDepth png", b"\x00" * 12))
    with pytest.raises(ValueError, match="16-bit"):
        decode_compressed_depth(compressed("16UC1; compressedDepth png", b"\x00" * 12 + b"junk" * 10))


# ------------------------------------------------------------------ the node
@pytest.fixture(scope="module")
def node():
    with serving_node(dict(SMALL_PARAMS, transport="compressed")) as proc:
        yield proc


def test_node_serves_compressed_images_and_survives_bad_ones(node):
    client = Client(outputs=("depth/image", "points"))
    try:
        pub = client.node.create_publisher(CompressedImage, "image/compressed", 10)
        client.spin_until(lambda: pub.get_subscription_count() > 0 and bool(client.diagnostics), 60, "the node")
        assert "waiting for images on /image/compressed" in node.log()
        client.pub_info.publish(camera_info(H, W))
        rgb = sample_image(H, W)
        fmt, data = encode_color(rgb, "jpeg")
        pub.publish(compressed(fmt, data, 1_000_000_000))
        out = client.wait_depth((1, 0), topics=("depth/image",))
        assert image_to_numpy(out["depth/image"]).shape == (H, W)
        for i in range(3):  # garbage, one at a time so none is dropped as stale
            before = int_value(client.diagnostics, "bad_frames")
            pub.publish(compressed("jpeg", b"\xff\xd8garbage" * 50, 2_000_000_000 + i))
            client.spin_until(lambda: int_value(client.diagnostics, "bad_frames") > before, 30, "a bad frame counted")
        pub.publish(compressed(*encode_color(rgb, "png"), 3_000_000_000))
        client.wait_depth((3, 0), topics=("depth/image",))  # still serving
    finally:
        client.close()
    skipped = [line for line in node.log().splitlines() if "image skipped" in line]
    assert len(skipped) == 1 and "could not be decoded" in skipped[0], node.log()  # rate-limited: one line


def png_claiming(height: int, width: int) -> bytes:
    """A PNG whose header claims height x width (no pixel data follows)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IEND", b"")


def test_an_oversize_compressed_frame_is_refused_from_its_header(node):
    """A 100000 x 100000 PNG (header only) is counted too large, never decoded; the
    node keeps serving."""
    client = Client(outputs=("depth/image",))
    try:
        pub = client.node.create_publisher(CompressedImage, "image/compressed", 10)
        client.spin_until(lambda: pub.get_subscription_count() > 0 and bool(client.diagnostics), 60, "the node")
        client.pub_info.publish(camera_info(H, W))
        before = int_value(client.diagnostics, "frames_too_large")
        pub.publish(compressed("png", png_claiming(100_000, 100_000), 4_000_000_000))
        client.spin_until(lambda: int_value(client.diagnostics, "frames_too_large") == before + 1, 30, "the skip")
        pub.publish(compressed(*encode_color(sample_image(H, W), "png"), 5_000_000_000))
        client.wait_depth((5, 0), topics=("depth/image",))
    finally:
        client.close()
    assert "100000x100000" in node.log() or "100,000" in node.log(), node.log()


def test_other_decoders_never_run_whatever_the_format_says(node):
    """OpenCV decodes by content: a PAM 1x20000 sent as "jpeg" and 1x60000 as "png" were
    served (min_side bypassed), a 2.3 MB Radiance HDR of 6000x6000 (36 Mpx, over the
    default max_pixels) was decoded before it failed, a PFM failed with an ERROR. Each is
    now a counted bad frame, never decoded, with a rate-limited line; the node serves on."""
    started = time.time()
    client = Client(outputs=("depth/image",))
    try:
        pub = client.node.create_publisher(CompressedImage, "image/compressed", 10)
        client.spin_until(lambda: pub.get_subscription_count() > 0 and bool(client.diagnostics), 60, "the node")
        client.wait_reliable(pub)  # the 2.3 MB HDR frame would be lost on a best-effort subscription
        client.pub_info.publish(camera_info(H, W))
        hostile = [("jpeg", pam(20_000, 1)), ("png", pam(60_000, 1)), ("rgb8; png compressed bgr8", hdr(6000, 6000)),
                   ("jpeg", pfm(64, 64))]
        counts = {key: int_value(client.diagnostics, key) for key in ("bad_frames", "failed_frames",
                                                                       "frames_too_small", "frames_too_large")}
        for i, (fmt, data) in enumerate(hostile):  # one at a time, so none is replaced unread
            pub.publish(compressed(fmt, data, 6_000_000_000 + i))
            client.spin_until(lambda: int_value(client.diagnostics, "bad_frames") > counts["bad_frames"] + i, 60,
                              f"hostile frame {i} counted as bad")
        pub.publish(compressed(*encode_color(sample_image(H, W), "jpeg"), 7_000_000_000))
        client.wait_depth((7, 0), topics=("depth/image",))  # still serving
        assert int_value(client.diagnostics, "bad_frames") == counts["bad_frames"] + len(hostile)
        for key in ("failed_frames", "frames_too_small", "frames_too_large"):
            assert int_value(client.diagnostics, key) == counts[key], key
        assert all(key[0] != 6 for key in client.received["depth/image"]), "a hostile frame was served"
    finally:
        client.close()
    assert "frame failed" not in node.log(), node.log()
    # One line per kind every 5 s: the first hostile frame's, unless an earlier test's
    # unreadable frame had just used the window.
    skipped = [(float(line.split("] [")[1].rstrip("]")), line) for line in node.log().splitlines()
               if "image skipped" in line and "could not be decoded" in line]
    assert all(b[0] - a[0] >= 4.9 for a, b in zip(skipped, skipped[1:])), skipped
    ours = [line for t, line in skipped if t >= started]
    assert (ours and "is PAM, not one of the formats read here (jpeg, png" in ours[0]) or \
        (skipped and skipped[-1][0] > started - 5.0), node.log()


def test_untrained_weights_are_the_same_in_every_launch(node):
    """No checkpoint: the node's random weights come from its `seed` parameter (default 0),
    so this node and a DepthEstimator built in this process give the same depth (before,
    each process drew its own weights: two launches differed by metres on one image)."""
    from textdepth_ros.serving.inference import DepthEstimator

    rgb = sample_image(H, W, seed=11)
    client = Client(outputs=("depth/image",))
    try:
        pub = client.node.create_publisher(CompressedImage, "image/compressed", 10)
        client.spin_until(lambda: pub.get_subscription_count() > 0 and bool(client.diagnostics), 60, "the node")
        pub.publish(compressed(*encode_color(rgb, "png"), 8_000_000_000))  # lossless: the same pixels
        served = image_to_numpy(client.wait_depth((8, 0))["depth/image"])
        text = client.diagnostics["text"]
    finally:
        client.close()
    torch_rng = __import__("torch").rand(3)  # this process's random state has moved on: it must not matter
    here = DepthEstimator("tiny", device="cpu").predict(rgb, text).depth
    assert torch_rng.shape == (3,) and np.allclose(served, here, rtol=1e-4, atol=1e-5), float(np.abs(served - here).max())


# ------------------------------------------------------------------ bags
N = 4


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    work = tmp_path_factory.mktemp("compressed_bags")
    data = generate_dataset(work / "data", n_train=0, n_test=N, height=H, width=W, seed=9)
    source = ["--root", data["root"], "--list", data["test_list"]]
    made = {}
    for name, extra in {"raw": [], "png": ["--image-format", "png", "--depth-format", "compressedDepth"],
                        "jpeg": ["--image-format", "jpeg", "--depth-format", "compressedDepth",
                                 "--depth-encoding", "32FC1"]}.items():
        made[name] = work / name
        assert textdepth(["make-bag", *source, "--out", str(made[name]), *extra]) == 0
    return work, made, make_checkpoint(work / "ckpt.safetensors")


def offline(work, bag, checkpoint, name):
    path = work / f"{name}.json"
    assert textdepth(["bag-eval", str(bag), "--offline", "--checkpoint", checkpoint, "--device", "cpu",
                      "--json", str(path)]) == 0
    return load_json(path)


def by_stamp(result):
    return {f["stamp_ns"]: f["metrics"] for f in result["frames"]}


def test_make_bag_writes_image_transport_topics(bags):
    from textdepth_ros.bags import bagio

    _, made, _ = bags
    reader = bagio.open_reader(made["png"])
    try:
        table = bagio.topic_table(reader)
    finally:
        reader.close()
    assert table["/camera/color/image_raw/compressed"] == (bagio.COMPRESSED_TYPE, N)
    assert table["/camera/depth/image_raw/compressedDepth"] == (bagio.COMPRESSED_TYPE, N)
    assert "/camera/color/image_raw" not in table


def test_bag_eval_offline_on_compressed_bags_matches_raw(bags):
    work, made, checkpoint = bags
    raw, png, jpeg = (offline(work, made[n], checkpoint, n) for n in ("raw", "png", "jpeg"))
    assert png["frames_in"] == jpeg["frames_in"] == N and png["ground_truth_encoding"] == "16UC1"
    assert jpeg["ground_truth_encoding"] == "32FC1" and jpeg["summary"]["metrics"]["count"] == N
    assert by_stamp(png) == by_stamp(raw)  # png colour + compressedDepth 16UC1 are lossless
    for name in METRIC_NAMES:
        assert math.isfinite(jpeg["summary"]["metrics"][name])


def test_bag_eval_live_on_a_compressed_bag(bags):
    """Replayed as CompressedImage into a node started with transport compressed."""
    work, made, checkpoint = bags
    path = work / "live.json"
    run = ProcessGroup(textdepth_cmd("bag-eval", made["png"], "--live", "--rate", 0.25, "--checkpoint", checkpoint,
                                     "--device", "cpu", "--json", path), work / "live.log")
    try:
        assert run.wait(timeout=240) == 0, run.log()
    finally:
        run.stop()
    result = load_json(path)
    assert result["frames_in"] == result["frames_out"] == N, run.log()
    expected = by_stamp(offline(work, made["png"], checkpoint, "png_again"))
    for stamp, metrics in by_stamp(result).items():
        for name in METRIC_NAMES:
            assert metrics[name] == pytest.approx(expected[stamp][name], rel=1e-4, abs=1e-6)
    with open(result["node_log"]) as log:
        assert "/compressed" in log.read()
