"""One lookup order for model files (textdepth_ros/paths.py, docs/install.md "Model
files"), used by checkpoints (node parameter, CLI options), the configs' pretrained files
and .onnx models: absolute path; relative to the working directory; $TEXTDEPTH_MODEL_DIR;
~/.cache/textdepth_ros; the package's own model folder (from a colcon install:
test_ros2_launch.py). Real files in the real formats, written here."""
import pytest
import timm
import torch

from textdepth_ros.errors import CheckpointError, WeightsUnavailableError
from textdepth_ros.model.backbone import SwinBackbone
from textdepth_ros.model.checkpoint import load_checkpoint, read_checkpoint_config, write_checkpoint
from textdepth_ros.model.config import load_model_config
from textdepth_ros.paths import find_model_file, imported_checkpoint, weights_dir


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A home (for ~/.cache/textdepth_ros), two $TEXTDEPTH_MODEL_DIR folders and a working
    directory, all empty; nothing of the user's own leaks in."""
    home, first, second, work = (tmp_path / n for n in ("home", "first", "second", "work"))
    for folder in (home / ".cache" / "textdepth_ros", first, second, work):
        folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TEXTDEPTH_MODEL_DIR", f"{first}:{second}")
    monkeypatch.chdir(work)
    return {"cache": home / ".cache" / "textdepth_ros", "first": first, "second": second, "work": work}


def put(folder, name="w.safetensors"):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_the_order_env_folders_then_user_cache_then_the_package(places):
    cached = put(places["cache"])
    assert find_model_file("w.safetensors") == cached
    second = put(places["second"])
    assert find_model_file("w.safetensors") == second
    first = put(places["first"])
    assert find_model_file("model/w.safetensors") == first  # model/ = "a model folder"
    here = put(places["work"] / "model")
    assert find_model_file("model/w.safetensors").resolve() == here  # the working directory comes first
    assert find_model_file(str(second)) == second  # an absolute path is that file
    sub = put(places["cache"], "nyu/best.safetensors")
    assert find_model_file("nyu/best.safetensors") == sub


def test_an_absolute_path_is_never_searched_elsewhere(places):
    put(places["first"])
    with pytest.raises(WeightsUnavailableError, match="not found: /nowhere/w.safetensors$"):
        find_model_file("/nowhere/w.safetensors")


def test_a_missing_file_names_every_place_in_order(places):
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint("model/missing.safetensors")
    message = str(caught.value)
    looked = [str(places["first"] / "missing.safetensors"), str(places["second"] / "missing.safetensors"),
              str(places["cache"] / "missing.safetensors"), str(weights_dir() / "missing.safetensors")]
    assert message.startswith("checkpoint not found: model/missing.safetensors (looked in the working directory")
    assert [message.index(p) for p in looked] == sorted(message.index(p) for p in looked)
    assert "TEXTDEPTH_MODEL_DIR" in message and "\n" not in message


def test_checkpoints_and_config_pretrained_files_are_found_by_name(places):
    """A checkpoint in ~/.cache/textdepth_ros is read by a relative name (the node's
    `checkpoint`, every CLI's --checkpoint; a whole load from an install:
    test_ros2_launch.py), and a Swin file named `model/<file>.pth` in a config (as
    paper.yaml names its own) loads from $TEXTDEPTH_MODEL_DIR."""
    write_checkpoint(places["cache"] / "mine.safetensors", {"w": torch.zeros(1)}, load_model_config("tiny"))
    config, _ = read_checkpoint_config("model/mine.safetensors")
    assert config["name"] == "tiny"

    torch.manual_seed(4)
    swin = timm.create_model("swin_tiny_patch4_window7_224", num_classes=0)
    torch.save(swin.state_dict(), places["second"] / "swin_tiny_test.pth")
    backbone = SwinBackbone(load_model_config("tiny")["backbone"]["timm_name"])
    assert backbone.load_pretrained("model/swin_tiny_test.pth")["missing"] == []
    key = "layers.1.blocks.0.attn.qkv.weight"
    assert torch.equal(backbone.swin.state_dict()[key], swin.state_dict()[key])


def test_the_demo_picks_an_imported_checkpoint_from_the_model_folders(places):
    assert imported_checkpoint() is None or imported_checkpoint().parent == weights_dir()
    kitti = put(places["first"], "pixelformer_kitti.safetensors")
    assert imported_checkpoint() == kitti
    nyu = put(places["cache"], "pixelformer_nyu.safetensors")
    assert imported_checkpoint() == nyu  # indoor first, wherever it is
