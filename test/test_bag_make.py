"""`textdepth make-bag`: the bag is read back by readers that share no code with the
writer (mcap-ros2-support for mcap; sqlite3 + rclpy deserialization for sqlite3) and
every message matches the dataset it came from."""
import sqlite3

import numpy as np
import pytest
import yaml

from textdepth_ros.cli import main as textdepth
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.data.nyu import NYU_INTRINSICS, load_depth, load_rgb, read_list
from textdepth_ros.data.scene_text import SceneText

H, W = 96, 128
START_NS = 1_700_000_000 * 10**9
TOPICS = ("/camera/color/image_raw", "/camera/color/camera_info", "/camera/depth/image_raw", "/scene_text")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("data"), n_train=0, n_test=6, height=H, width=W, seed=3)


def make_bag(dataset, out, *extra):
    argv = ["make-bag", "--root", dataset["root"], "--list", dataset["test_list"], "--out", str(out), *extra]
    assert textdepth(argv) == 0


def expected_frames(dataset):
    samples = read_list(dataset["test_list"])
    texts = SceneText()
    return [(load_rgb(dataset["root"], s), load_depth(dataset["root"], s), texts.text_for(s)) for s in samples]


def read_mcap(path):
    """(topic, log time ns, decoded message) via mcap + mcap-ros2-support's own CDR decoder."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(path, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        return [(channel.topic, message.log_time, decoded)
                for _, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True)]


def stamp(header):
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def check_messages(messages, frames, rate=10.0):
    """messages: (topic, log time ns, message object with ROS field names)."""
    by_topic = {t: [(lt, m) for topic, lt, m in messages if topic == t] for t in TOPICS}
    assert [len(by_topic[t]) for t in TOPICS[:3]] == [len(frames)] * 3
    period = int(1e9 / rate)
    intr = NYU_INTRINSICS
    sx = W / intr["width"]
    for i, (rgb, depth, _) in enumerate(frames):
        want_ns = START_NS + i * period
        (t_img, img), (t_info, info), (t_depth, dep) = (by_topic[t][i] for t in TOPICS[:3])
        assert t_img == t_info == t_depth == want_ns
        assert stamp(img.header) == stamp(info.header) == stamp(dep.header) == want_ns
        assert img.header.frame_id == dep.header.frame_id == info.header.frame_id == "camera_color_optical_frame"
        assert (img.encoding, img.height, img.width, img.step) == ("rgb8", H, W, W * 3)
        np.testing.assert_array_equal(np.frombuffer(bytes(img.data), np.uint8).reshape(H, W, 3), rgb)
        assert (dep.encoding, dep.step, dep.is_bigendian) == ("16UC1", W * 2, 0)
        mm = np.frombuffer(bytes(dep.data), "<u2").reshape(H, W)
        np.testing.assert_array_equal(mm, np.round(depth * 1000).astype(np.uint16))
        assert (info.height, info.width) == (H, W)
        k = np.asarray(info.k).reshape(3, 3)
        assert k[0, 0] == pytest.approx(intr["fx"] * sx) and k[1, 1] == pytest.approx(intr["fy"] * H / intr["height"])
        assert k[0, 2] == pytest.approx((intr["cx"] + 0.5) * sx - 0.5)
    # Text: one message per change of scene, written half a period before its frame.
    texts = [m.data for _, m in by_topic["/scene_text"]]
    changes = [f[2] for i, f in enumerate(frames) if i == 0 or frames[i - 1][2] != f[2]]
    assert texts == changes
    assert by_topic["/scene_text"][0][0] == START_NS - period // 2


def test_mcap_bag_reads_back_intact_with_an_independent_reader(dataset, tmp_path):
    out = tmp_path / "bag"
    make_bag(dataset, out)
    files = list(out.glob("*.mcap"))
    assert len(files) == 1
    messages = read_mcap(files[0])
    frames = expected_frames(dataset)
    check_messages(messages, frames)

    # metadata.yaml carries what `ros2 bag info` / `ros2 bag play` read.
    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap" and meta["version"] == 8
    assert meta["message_count"] == len(messages)
    assert meta["relative_file_paths"] == [files[0].name]
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}
    assert counts == {t: sum(1 for m in messages if m[0] == t) for t in TOPICS}
    text_qos = next(t["topic_metadata"]["offered_qos_profiles"] for t in meta["topics_with_message_count"]
                    if t["topic_metadata"]["name"] == "/scene_text")
    assert yaml.safe_load(text_qos)[0]["durability"] == 1  # transient local: a late node still gets it


def test_sqlite3_bag_reads_back_intact_through_plain_sqlite(dataset, tmp_path):
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import String

    out = tmp_path / "bag"
    make_bag(dataset, out, "--storage", "sqlite3", "--bag-version", "9")
    (db,) = out.glob("*.db3")
    classes = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CameraInfo": CameraInfo, "std_msgs/msg/String": String}
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT t.name, t.type, m.timestamp, m.data FROM messages m JOIN topics t "
                           "ON m.topic_id = t.id ORDER BY m.timestamp, m.id").fetchall()
    messages = [(name, ts, deserialize_message(bytes(data), classes[kind])) for name, kind, ts, data in rows]
    check_messages(messages, expected_frames(dataset))
    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "sqlite3" and meta["version"] == 9


def test_options_fixed_text_rate_intrinsics_and_metres(dataset, tmp_path):
    out = tmp_path / "bag"
    make_bag(dataset, out, "--text", "a small office", "--rate", "4", "--limit", "3",
             "--intrinsics", "200", "210", "63.5", "47.5", "--depth-encoding", "32FC1")
    messages = read_mcap(next(out.glob("*.mcap")))
    texts = [m.data for topic, _, m in messages if topic == "/scene_text"]
    assert texts == ["a small office"]
    images = [t for topic, t, _ in messages if topic == "/camera/color/image_raw"]
    assert [t - START_NS for t in images] == [0, 250_000_000, 500_000_000]
    info = next(m for topic, _, m in messages if topic == "/camera/color/camera_info")
    assert list(info.k) == [200, 0, 63.5, 0, 210, 47.5, 0, 0, 1]
    depth = next(m for topic, _, m in messages if topic == "/camera/depth/image_raw")
    assert depth.encoding == "32FC1"
    metres = np.frombuffer(bytes(depth.data), "<f4").reshape(H, W)
    gt = expected_frames(dataset)[0][1]
    np.testing.assert_allclose(np.nan_to_num(metres, nan=0.0), gt, rtol=0, atol=1e-6)
    assert np.isnan(metres[gt == 0]).all()


@pytest.mark.parametrize("extra, message", [
    (["--list", "/nonexistent/list.txt"], "not found"),
    ([], "nothing to write"),
    (["--rgb-dir", "/nonexistent"], "RGB folder not found"),
    (["--list", "LIST", "--rate", "0"], "--rate"),
])
def test_bad_input_is_a_clear_error(dataset, tmp_path, capsys, extra, message):
    extra = [dataset["test_list"] if a == "LIST" else a for a in extra]
    assert textdepth(["make-bag", "--out", str(tmp_path / "bag"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_existing_output_is_not_overwritten_without_asking(dataset, tmp_path, capsys):
    out = tmp_path / "bag"
    make_bag(dataset, out, "--limit", "1")
    argv = ["make-bag", "--root", dataset["root"], "--list", dataset["test_list"], "--out", str(out)]
    assert textdepth(argv) == 2
    assert "already exists" in capsys.readouterr().err
    make_bag(dataset, out, "--limit", "2", "--overwrite")
    assert yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["message_count"] == 2 * 3 + 1


def test_type_hashes_in_metadata_are_the_ones_rclpy_announces(dataset, tmp_path):
    """Jazzy+ `ros2 bag play` compares these with the live types."""
    import rclpy

    from textdepth_ros.bags.bagio import message_class

    out = tmp_path / "bag"
    make_bag(dataset, out, "--limit", "1")
    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("hash_check", context=context)
    try:
        for i, entry in enumerate(meta["topics_with_message_count"]):
            topic = entry["topic_metadata"]
            node.create_publisher(message_class(topic["type"]), f"hash_check_{i}", 1)
            (info,) = node.get_publishers_info_by_topic(f"/hash_check_{i}")
            assert str(info.topic_type_hash) == topic["type_description_hash"], topic["name"]
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
