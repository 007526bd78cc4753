"""Scene text from the camera (text_source auto), below the node: the CLIP image tower
(open_clip's own code, weights from a CLIP file), the recognizer's similarities against
open_clip's computed independently, the decision logic on real computed scores (argmax,
hysteresis, margin), a human text winning and handing back, and the checkpoint's scene
text record (written by train: see test_train; checked on load here)."""
import numpy as np
import pytest
import torch

from scene_text_helpers import (
    OpenClipReference,
    scene_image,
    text_side,
    write_clip_file,
)
from textdepth_ros.errors import CheckpointError, UserError
from textdepth_ros.model.checkpoint import read_checkpoint_config, write_checkpoint
from textdepth_ros.model.config import load_model_config
from textdepth_ros.model.image_encoder import ClipImageEncoder, count_parameters
from textdepth_ros.model.scene_labels import NYU_SCENE_TYPES, label_texts
from textdepth_ros.serving.scene_recognition import SceneRecognizer, scene_vocabulary
from textdepth_ros.serving.text_choice import SceneChooser, TextArbiter

TEMPLATE = "a photo of a {scene}"


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    return write_clip_file(tmp_path_factory.mktemp("clip") / "open_clip_pytorch_model.bin")


@pytest.fixture(scope="module")
def recognizer(clip_file):
    """The tiny config's text tower from the CLIP file, and a recognizer whose image
    tower comes from the same file, over NYU's scene types."""
    model = text_side(clip_file)
    recognizer, report = SceneRecognizer.for_model(model, list(NYU_SCENE_TYPES), TEMPLATE, str(clip_file))
    assert report["untrained"] is False and report["text_tower_matches"] is True
    assert report["logit_scale"] == pytest.approx(100.0)
    return recognizer


@pytest.fixture(scope="module")
def scored(recognizer):
    """Real scores of a few frames: the first two frames whose best labels differ."""
    frames = [scene_image(seed) for seed in range(8)]
    scores = [recognizer.scores(rgb) for rgb in frames]
    best = [int(np.argmax(s.probabilities)) for s in scores]
    other = next((i for i in range(1, len(best)) if best[i] != best[0]), None)
    assert other is not None, f"all 8 frames recognised as the same label {best}: no switch to test"
    return frames, scores, (0, other)


def test_similarities_are_open_clips_and_the_choice_is_their_argmax(recognizer, clip_file, scored):
    frames, scores, _ = scored
    texts = label_texts(TEMPLATE, NYU_SCENE_TYPES)
    reference = OpenClipReference(clip_file)
    for rgb, ours in zip(frames[:4], scores[:4]):
        expected = reference.similarities(rgb, texts)
        np.testing.assert_allclose(ours.similarities, expected, atol=2e-6)
        top2 = np.sort(expected)[-2:]
        assert top2[1] - top2[0] > 1e-4, "a near tie: the argmax would be decided by rounding"
        decision = SceneChooser(NYU_SCENE_TYPES, margin=0.1, confirmations=2).decide(ours.probabilities)
        assert decision.label == NYU_SCENE_TYPES[int(np.argmax(expected))] and decision.switched
        np.testing.assert_allclose(ours.probabilities, torch.softmax(100 * torch.tensor(expected), 0).numpy(),
                                   atol=1e-5)


def test_a_new_scene_must_lead_by_the_margin_in_consecutive_decisions(scored):
    _, scores, (a, b) = scored
    first, second = scores[a].probabilities, scores[b].probabilities
    label_a, label_b = NYU_SCENE_TYPES[int(np.argmax(first))], NYU_SCENE_TYPES[int(np.argmax(second))]
    lead = float(second.max() - second[int(np.argmax(first))])  # how far b's scene leads a's on frame b

    chooser = SceneChooser(NYU_SCENE_TYPES, margin=lead / 2, confirmations=2)
    assert chooser.decide(first).label == label_a
    held = chooser.decide(second)
    assert (held.label, held.switched, held.best, held.streak) == (label_a, False, label_b, 1)
    switched = chooser.decide(second)
    assert (switched.label, switched.switched) == (label_b, True)

    flapping = SceneChooser(NYU_SCENE_TYPES, margin=lead / 2, confirmations=2)
    labels = [flapping.decide(p).label for p in [first] + [second, first] * 5]
    assert set(labels) == {label_a}, "alternating frames must not flap the text"

    short = SceneChooser(NYU_SCENE_TYPES, margin=lead + 1e-3, confirmations=1)
    short.decide(first)
    assert {short.decide(second).label for _ in range(5)} == {label_a}, "a lead below the margin never switches"


def test_a_human_text_wins_for_the_hold_time_then_hands_back():
    arbiter = TextArbiter("topic_first", hold_s=5.0)
    assert arbiter.current(0.0) == (None, None)
    arbiter.scene_text = "a photo of a kitchen"
    assert arbiter.current(1.0) == ("a photo of a kitchen", "auto")
    assert arbiter.human("a greenhouse", now=10.0)
    arbiter.scene_text = "a photo of a bedroom"  # recognition goes on meanwhile
    assert arbiter.current(14.9) == ("a greenhouse", "human")
    assert arbiter.human("a greenhouse", now=14.0)  # each message renews the hold
    assert arbiter.current(18.9) == ("a greenhouse", "human")
    assert arbiter.current(19.0) == ("a photo of a bedroom", "auto")
    auto = TextArbiter("auto", hold_s=5.0)
    auto.scene_text = "a photo of a kitchen"
    assert not auto.human("a greenhouse", now=0.0) and auto.current(0.1) == ("a photo of a kitchen", "auto")


def test_paper_config_takes_vit_l14_and_tiny_without_an_image_tower_says_so():
    paper = load_model_config("paper")["text_encoder"]
    assert 300e6 < count_parameters(paper) < 310e6  # ViT-L/14's image tower, counted on the meta device
    tiny = dict(load_model_config("tiny")["text_encoder"], vision_cfg=None)
    with pytest.raises(UserError, match="vision_cfg"):
        ClipImageEncoder(tiny)
    bad = load_model_config("tiny")
    bad["text_encoder"]["vision_cfg"]["head_width"] = 48
    with pytest.raises(UserError, match="head_width"):
        load_model_config(bad)


def test_a_clip_file_of_another_text_tower_is_detected(clip_file, tmp_path):
    other = write_clip_file(tmp_path / "other.bin", seed=1)
    model = text_side(clip_file)
    report = ClipImageEncoder(model.config["text_encoder"]).load_pretrained(str(other), None, model.text_encoder.tower)
    assert report["text_tower_matches"] is False


def _checkpoint(path, extra):
    write_checkpoint(path, {}, load_model_config("tiny"), extra)  # the header is what is read here
    return path


def test_checkpoint_scene_record_is_read_and_checked_on_load(tmp_path):
    record = {"text_template": "a room: {scene}", "scene_labels": ["attic", "garage"]}
    good = _checkpoint(tmp_path / "good.safetensors", {"scene_text": record})
    assert scene_vocabulary(good) == ("a room: {scene}", ["attic", "garage"], "the checkpoint's recorded scene types")
    assert scene_vocabulary(good, ["cellar"])[1:] == (["cellar"], "the auto_text_labels parameter")
    older = _checkpoint(tmp_path / "older.safetensors", {"train_config": {"data": {"text_template": "{scene} indoors"}}})
    template, labels, _ = scene_vocabulary(older)
    assert template == "{scene} indoors" and labels == list(NYU_SCENE_TYPES)
    for bad, why in [({"text_template": "a {room}", "scene_labels": ["x"]}, "text_template"),
                     ({"text_template": TEMPLATE, "scene_labels": []}, "scene_labels"),
                     ({"text_template": TEMPLATE, "scene_labels": ["x", "x"]}, "duplicates"),
                     ({"text_template": TEMPLATE, "scene_labels": ["ok", "bad\x00"]}, "printable"),
                     ({"scene_labels": ["x"]}, "exactly")]:
        path = _checkpoint(tmp_path / "bad.safetensors", {"scene_text": bad})
        with pytest.raises(CheckpointError, match=why):
            read_checkpoint_config(path)
