"""`textdepth import-pixelformer`: a checkpoint saved the way PixelFormer's train.py saves
it (DDP-wrapped state dict under 'model', optimizer and step beside it) becomes a
textdepth checkpoint whose `textdepth predict` on a real photo equals PixelFormer's own
forward on it; bad files get one line, exit 2 and no output file."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open

from pixelformer_reference import build_reference, normalize, reference_shapes, save_like_pixelformer
from textdepth_ros.cli import main as textdepth
from textdepth_ros.camera_scale import Camera
from textdepth_ros.model.checkpoint import describe_mismatch, read_checkpoint
from textdepth_ros.model.counting import build_on_meta
from textdepth_ros.model.pixelformer_import import pixelformer_config, rename_pixelformer_state
from textdepth_ros.paths import imported_checkpoint

PHOTO = Path(__file__).parent / "data" / "coffee_480x640.jpg"


def read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def reference_depth(reference, rgb: np.ndarray) -> np.ndarray:
    """PixelFormer's preprocessing (float32 / 255, ImageNet Normalize) and forward."""
    image = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        return reference(normalize(image))[0, 0].numpy()


def relative(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def kitti_reference():
    return build_reference("tiny07", max_depth=80.0, seed=3)


def test_imported_checkpoint_predicts_what_pixelformer_predicts(tmp_path, kitti_reference, capsys):
    source = tmp_path / "kitti.pth"
    save_like_pixelformer(kitti_reference, source, with_optimizer=True)
    out = tmp_path / "model" / "pixelformer_kitti.safetensors"
    assert textdepth(["import-pixelformer", "--checkpoint", str(source), "--out", str(out), "--max-depth", "80"]) == 0
    assert "swin_tiny_patch4_window7_224" in capsys.readouterr().out
    _, config, extra = read_checkpoint(out)
    assert config["bins"]["dataset_max"] == 80.0 and (config["trca"], config["tbcp"]) == (False, False)
    assert extra["imported_from"] == "kitti.pth"
    assert extra["camera"] == Camera(721.5377, 721.5377, 1216, 352)  # --max-depth 80: PixelFormer's KITTI setting

    depth_file = tmp_path / "photo.npy"
    assert textdepth(["predict", "--checkpoint", str(out), "--image", str(PHOTO), "--out", str(depth_file),
                      "--device", "cpu"]) == 0
    assert "UNTRAINED" not in capsys.readouterr().err
    ours = np.load(depth_file)
    expected = reference_depth(kitti_reference, read_rgb(PHOTO))
    assert ours.shape == expected.shape == (480, 640)
    assert expected.std() > 0.3  # the photo gives a spread of depths, so equality means something
    print(f"predict vs PixelFormer at 480x640: relative difference {relative(ours, expected):.1e}")
    assert relative(ours, expected) <= 1e-5


def test_plain_and_wrapped_state_dicts_import_to_the_same_tensors(tmp_path, kitti_reference):
    wrapped, plain = tmp_path / "wrapped.pth", tmp_path / "plain.pth"
    save_like_pixelformer(kitti_reference, wrapped)
    torch.save(kitti_reference.state_dict(), plain)  # no 'model', no 'module.'
    outputs = []
    for source in (wrapped, plain):
        out = tmp_path / f"{source.stem}.safetensors"
        assert textdepth(["import-pixelformer", "--checkpoint", str(source), "--out", str(out)]) == 0
        with safe_open(str(out), "pt") as f:
            outputs.append({k: f.get_tensor(k) for k in f.keys()})
            assert json.loads(f.metadata()["config"])["bins"]["dataset_max"] == 10.0  # the default --max-depth
    assert outputs[0].keys() == outputs[1].keys()
    assert all(torch.equal(outputs[0][k], outputs[1][k]) for k in outputs[0])


@pytest.mark.parametrize("version, timm_name", [("large07", "swin_large_patch4_window7_224"),
                                                ("base12", "swin_base_patch4_window12_384")])
def test_swin_size_and_window_are_read_from_the_tensors(version, timm_name):
    shapes = reference_shapes(version)  # on the meta device: Swin-L's weights are never allocated
    config = pixelformer_config(shapes, 10.0)
    assert describe_mismatch(build_on_meta(config).state_dict(), rename_pixelformer_state(shapes)) == ""
    assert config["backbone"]["timm_name"] == timm_name
    assert config["decoder"]["window_size"] == 7  # PixelFormer's SAM window is 7 whatever Swin's is
    assert config["decoder"]["sam_dims"] == [128, 256, 512, 1024] and config["decoder"]["pqi_channels"] == 512
    assert pixelformer_config(shapes, 80.0)["bins"]["dataset_max"] == 80.0


def exploit_file(path: Path, marker: Path) -> None:
    class Exploit:
        def __reduce__(self):
            import os

            return (os.makedirs, (str(marker),))

    torch.save({"model": {"backbone.patch_embed.proj.weight": Exploit()}}, path)


def test_bad_inputs_are_one_line_exit_2_and_leave_no_output(tmp_path, kitti_reference, capsys):
    good = tmp_path / "good.pth"
    save_like_pixelformer(kitti_reference, good, with_optimizer=False)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    swin_only = tmp_path / "swin.pth"
    torch.save({"model": {k: v for k, v in kitti_reference.state_dict().items() if k.startswith("backbone.")}}, swin_only)
    evil, marker = tmp_path / "evil.pth", tmp_path / "pwned"
    exploit_file(evil, marker)
    diverged = tmp_path / "diverged.pth"
    state = {k: v.clone() for k, v in kitti_reference.state_dict().items()}
    state["sam2.sam_block.attn.q.weight"][0, 0] = float("nan")
    torch.save({"model": state}, diverged)
    cases = {
        diverged: "NaN/inf values",
        truncated: "cannot read PixelFormer checkpoint",
        swin_only: "not a PixelFormer checkpoint",
        evil: "could run code",
        tmp_path / "missing.pth": "not found",
    }
    out = tmp_path / "out.safetensors"
    for source, message in cases.items():
        assert textdepth(["import-pixelformer", "--checkpoint", str(source), "--out", str(out)]) == 2, source
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], source
    assert not marker.exists(), "the pickled code ran"
    assert textdepth(["import-pixelformer", "--checkpoint", str(good), "--out", str(tmp_path / "out.pth")]) == 2
    assert ".safetensors" in capsys.readouterr().err


def test_the_console_script_says_one_line_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "out.safetensors"
    result = subprocess.run([sys.executable, "-m", "textdepth_ros.cli", "import-pixelformer", "--checkpoint", str(bad),
                             "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    assert not out.exists()


def test_imported_checkpoint_in_model_folder_prefers_nyu(tmp_path):
    assert imported_checkpoint(tmp_path) is None
    (tmp_path / "pixelformer_kitti.safetensors").write_bytes(b"x")
    assert imported_checkpoint(tmp_path).name == "pixelformer_kitti.safetensors"
    (tmp_path / "pixelformer_nyu.safetensors").write_bytes(b"x")
    assert imported_checkpoint(tmp_path).name == "pixelformer_nyu.safetensors"
