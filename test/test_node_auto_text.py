"""depth_node with `text_source: topic_first` over real DDS, set from a params file
under a namespace, fed 640x480 frames by a camera in another process (default DDS
settings): the node recognises the scene with CLIP's image tower, publishes the label
open_clip itself computes as most similar (written through the template) on
`text/auto` with its probability, serves depth with that text, lets a published text
win, and hands back to the recognised scene once `auto_text_hold` has passed."""
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float32, String

from ros_helpers import REPO, connected_client, int_value, serving_node
from scene_text_helpers import OpenClipReference, tiny_config_with_clip, write_clip_file
from textdepth_ros.model.scene_labels import DEFAULT_TEMPLATE, NYU_SCENE_TYPES, label_texts
from textdepth_ros.ros.auto_text import AUTO_SCORE_TOPIC, AUTO_TEXT_TOPIC
from textdepth_ros.ros.text_input import text_qos

pytestmark = pytest.mark.timeout(240)
NS = "/robot1"
HOLD_S = 3.0
HEIGHT, WIDTH = 480, 640


def camera_frame() -> np.ndarray:
    """The frame test/camera_publisher.py sends (its seeded random image)."""
    return np.random.default_rng(0).integers(0, 255, HEIGHT * WIDTH * 3, dtype=np.uint8).reshape(HEIGHT, WIDTH, 3)


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    return write_clip_file(tmp_path_factory.mktemp("clip") / "open_clip_pytorch_model.bin")


@pytest.fixture(scope="module")
def node(tmp_path_factory, clip_file):
    tmp = tmp_path_factory.mktemp("auto_text_node")
    params = {"model_config": str(tiny_config_with_clip(tmp / "tiny_clip.yaml", clip_file)),
              "warmup_height": 96, "warmup_width": 128, "diagnostics_period": 0.2,
              "text_source": "topic_first", "auto_text_period": 0.5, "auto_text_hold": HOLD_S,
              "auto_text_confirmations": 2, "auto_text_margin": 0.05}
    params_file = tmp / "robot.yaml"
    params_file.write_text(yaml.safe_dump({"/**/depth_node": {"ros__parameters": params}}))
    with serving_node(params_file=params_file, namespace=NS, log_path=tmp / "node.log") as proc:
        yield proc


def test_recognised_scene_drives_the_text_and_a_human_text_wins_then_hands_back(node, clip_file):
    texts = label_texts(DEFAULT_TEMPLATE, NYU_SCENE_TYPES)
    similarities = OpenClipReference(clip_file).similarities(camera_frame(), texts)
    expected = texts[int(np.argmax(similarities))]
    probability = float(torch.softmax(100 * torch.tensor(similarities), 0).max())
    log = node.log()
    assert "28 scene labels from NYU Depth v2's scene types" in log and "UNTRAINED CLIP image tower" not in log, log

    # The client's own image publisher is reliable too: the node subscribes reliable only when all are.
    with connected_client(namespace=NS, image_qos=QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)) as client:
        auto = {"text": [], "score": []}
        client.node.create_subscription(String, AUTO_TEXT_TOPIC, lambda m: auto["text"].append(m.data), text_qos())
        client.node.create_subscription(Float32, AUTO_SCORE_TOPIC, lambda m: auto["score"].append(m.data), text_qos())
        camera = subprocess.Popen([sys.executable, str(REPO / "test" / "camera_publisher.py"), "--topic",
                                   f"{NS}/image", "--reliability", "reliable", "--wait-for", "reliable", "--count",
                                   "14", "--rate", "2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert camera.stdout.readline().strip() == "ready"
            camera.stdin.write("go\n")
            camera.stdin.flush()
            client.spin_until(lambda: auto["text"] and auto["score"], 60, "a decision on text/auto")
            assert auto["text"][0] == expected, (auto["text"], similarities)
            assert auto["score"][0] == pytest.approx(probability, abs=1e-4)

            # Depth keeps coming with the recognised text.
            client.spin_until(lambda: client.diagnostics.get("text") == expected, 30, "the recognised text in use")
            served = int_value(client.diagnostics, "frames_published")
            client.spin_until(lambda: int_value(client.diagnostics, "frames_published") >= served + 2, 60,
                              "depth served with the recognised text")
            values = client.diagnostics
            assert (values["text"], values["text_origin"], values["text_source"]) == (expected, "auto", "topic_first")
            assert values["auto_text_label"] == NYU_SCENE_TYPES[int(np.argmax(similarities))]
            assert values["auto_text_image_tower_untrained"] == "false"

            sent = time.monotonic()
            client.send_text("a greenhouse with plants")  # waits until /diagnostics shows it in use
            assert client.diagnostics["text_origin"] == "human"
            client.spin_until(lambda: client.diagnostics.get("text") == expected, 30, "hand-back to the scene")
            assert time.monotonic() - sent >= HOLD_S, "the published text must hold for auto_text_hold"
            assert client.diagnostics["text_origin"] == "auto"
            assert set(auto["text"]) == {expected}, "the same frame never changes the recognised scene"
        finally:
            camera.stdin.close()
            camera.wait(30)
