"""Focal-aware metric scale (camera_scale.py): the training camera a checkpoint records
(validated on load, settable with `textdepth set-camera`), the factor, and what
`predict` and `eval` do with it. The node's side is test_node_focal_cloud.py."""
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from model_helpers import tiny_model
from textdepth_ros.camera_scale import Camera, FocalScaling
from textdepth_ros.cli import main as textdepth
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.errors import CheckpointError
from textdepth_ros.model.checkpoint import load_checkpoint, read_checkpoint_config, save_checkpoint

F0 = 100.0  # the training focal length of the checkpoints here, in pixels at 128x96


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One tiny model saved twice: without a camera (an older checkpoint) and trained at F0."""
    folder = tmp_path_factory.mktemp("camera")
    model = tiny_model(seed=1)
    old = save_checkpoint(folder / "old.safetensors", model, extra={"step": 3})
    at_f0 = save_checkpoint(folder / "f0.safetensors", model, extra={"step": 3, "camera": Camera(F0, F0, 128, 96)})
    return old, at_f0


def metadata(path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_the_camera_is_its_own_field_and_comes_back_as_a_camera(checkpoints):
    old, at_f0 = checkpoints
    assert json.loads(metadata(at_f0)["camera"]) == {"fx": F0, "fy": F0, "width": 128, "height": 96}
    assert "camera" not in json.loads(metadata(at_f0)["extra"])
    assert read_checkpoint_config(at_f0)[1] == {"step": 3, "camera": Camera(F0, F0, 128, 96)}
    assert "camera" not in read_checkpoint_config(old)[1]  # load_checkpoint returns this `extra`


@pytest.mark.parametrize("record,why", [
    ('{"fx": -5, "fy": 100, "width": 128, "height": 96}', "fx must be a focal length"),
    ('{"fx": 100, "fy": 100, "width": 128.5, "height": 96}', "width must be an integer"),
    ('{"fx": 100, "fy": 100, "width": 128, "height": 96, "cx": 3}', "unknown: cx"),
    ('{"fx": 100, "width": 128, "height": 96}', "missing: fy"),
    ('[100, 100]', "must be a mapping"),
    ('{"fx": NaN', "not valid JSON"),
])
def test_a_bad_camera_record_is_refused_on_load_before_any_tensor(checkpoints, tmp_path, record, why):
    """A checkpoint someone sent: its camera is checked like its config, one line naming it."""
    _, at_f0 = checkpoints
    bad = tmp_path / "bad.safetensors"
    save_file({"w": torch.zeros(1)}, str(bad), metadata=dict(metadata(at_f0), camera=record))
    with pytest.raises(CheckpointError, match=why) as caught:
        load_checkpoint(bad)
    assert "its training camera" in str(caught.value) and "\n" not in str(caught.value)


def test_the_factor_compares_focal_lengths_at_the_training_size_and_is_said_once_per_change():
    scaling = FocalScaling("auto", Camera(F0, F0, 128, 96))
    factor, line = scaling.factor(2 * F0, 2 * F0, 128, 96)
    assert factor == 2.0 and "depth x2.0000" in line and "training camera 100.00 px at 128x96" in line
    assert scaling.factor(2 * F0, 2 * F0, 128, 96) == (2.0, None)  # the same camera again: nothing new to say
    factor, line = scaling.factor(50.0, 200.0, 128, 96)  # fx != fy: the geometric mean, 100 px
    assert factor == 1.0 and "fx 50.00 fy 200.00 px" in line
    # the training camera at twice the resolution (or binned 2x2: half), same field of view: 1
    assert scaling.factor(2 * F0, 2 * F0, 256, 192)[0] == pytest.approx(1.0, abs=1e-12)
    assert scaling.factor(F0 / 2, F0 / 2, 64, 48)[0] == pytest.approx(1.0, abs=1e-12)
    factor, line = scaling.factor(2 * F0, 2 * F0, 192, 128)  # another aspect: sizes compared by area
    assert factor == pytest.approx(2 * (128 * 96 / (192 * 128)) ** 0.5) and "at the training size" in line
    assert scaling.factor() == (1.0, "focal scaling auto: no focal length for the input yet, depth is not rescaled")
    scaling.mode = "off"
    factor, line = scaling.factor(2 * F0, 2 * F0, 128, 96)
    assert factor == 1.0 and line.startswith("focal scaling off")
    assert FocalScaling("auto", None).factor(2 * F0, 2 * F0, 128, 96)[1].startswith(
        "focal scaling auto: the checkpoint records no training camera")


def test_set_camera_records_one_in_an_older_checkpoint_and_keeps_the_rest(checkpoints, tmp_path, capsys):
    old, _ = checkpoints
    assert textdepth(["set-camera", str(old)]) == 0
    assert "training camera unknown" in capsys.readouterr().out
    out = tmp_path / "set.safetensors"
    assert textdepth(["set-camera", str(old), "--dataset", "nyu", "--out", str(out)]) == 0
    assert "518.86 px at 640x480 (was unknown)" in capsys.readouterr().out
    assert read_checkpoint_config(out)[1]["camera"] == Camera(518.8579, 518.8579, 640, 480)
    before, after = metadata(old), metadata(out)
    assert {k: v for k, v in after.items() if k != "camera"} == before  # config and extra exactly as they were
    with safe_open(str(old), framework="pt") as a, safe_open(str(out), framework="pt") as b:
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys()) and set(a.keys()) == set(b.keys())
    assert textdepth(["set-camera", str(out), "--fx", "600", "--fy", "610", "--width", "640", "--height", "480"]) == 0
    assert read_checkpoint_config(out)[1]["camera"] == Camera(600.0, 610.0, 640, 480)
    assert textdepth(["set-camera", str(out), "--clear"]) == 0
    assert "camera" not in metadata(out)

    capsys.readouterr()
    unchanged = out.read_bytes()
    for bad in (["--fx", "0", "--width", "640", "--height", "480"], ["--fx", "500"], ["--dataset", "nyu", "--fx", "5"]):
        assert textdepth(["set-camera", str(out), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("textdepth set-camera: error:"), err
    assert out.read_bytes() == unchanged and sorted(p.name for p in tmp_path.iterdir()) == ["set.safetensors"]


def test_predict_gives_twice_the_depth_for_twice_the_training_focal_length(checkpoints, tmp_path, capsys):
    import cv2

    _, at_f0 = checkpoints
    image = tmp_path / "room.png"
    cv2.imwrite(str(image), (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8))
    common = ["predict", "--checkpoint", str(at_f0), "--image", str(image), "--fx", str(2 * F0), "--uncertainty"]
    assert textdepth([*common, "--out", str(tmp_path / "auto.npy")]) == 0
    assert "depth x2.0000" in capsys.readouterr().out
    assert textdepth([*common, "--out", str(tmp_path / "off.npy"), "--focal-scaling", "off"]) == 0
    assert "focal scaling off" in capsys.readouterr().out
    for name in ("{}.npy", "{}_uncertainty.npy"):
        scaled, plain = (np.load(tmp_path / name.format(mode)) for mode in ("auto", "off"))
        assert plain.std() > 0 and np.array_equal(scaled, 2 * plain)  # exactly: a float32 doubling


@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    """Two test images at 96x128 and two lists of them: one whose focal column is the
    training camera's (F0), one whose is 2 F0."""
    data = generate_dataset(tmp_path_factory.mktemp("nyu"), n_train=0, n_test=2, height=96, width=128, seed=5)
    lines = open(data["test_list"]).read().split("\n")
    for name, focal in (("same", F0), ("double", 2 * F0)):
        path = f"{data['root']}/{name}.txt"
        open(path, "w").write("\n".join(" ".join(line.split()[:2] + [str(focal)]) for line in lines if line) + "\n")
        data[name] = path
    return data


def test_eval_on_a_list_of_the_training_focal_length_is_unchanged(checkpoints, lists, tmp_path, capsys):
    _, at_f0 = checkpoints

    def results(test_list, *options):
        out = tmp_path / f"{len(list(tmp_path.iterdir()))}"
        assert textdepth(["eval", "--checkpoint", str(at_f0), "--data-root", lists["root"], "--test-list", test_list,
                          "--out", str(out), "--num-workers", "0", "--crop", "none", "--max-depth", "100",
                          "--no-flip", *options]) == 0
        return json.loads((out / "results.json").read_text()), capsys.readouterr().out

    off, _ = results(lists["same"], "--focal-scaling", "off")
    same, said = results(lists["same"])
    assert same == off and "depth x1.0000" in said
    double, said = results(lists["double"])
    assert "depth x2.0000" in said and double != off
    # silog is scale-invariant: doubling every prediction leaves it (--max-depth 100: nothing clamped)
    assert double["silog"] == pytest.approx(off["silog"], rel=1e-4) and double["abs_rel"] != off["abs_rel"]
