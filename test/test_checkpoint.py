"""Checkpoints: bit-exact round trip, self-describing, clear refusals."""
import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from model_helpers import images, tiny_model
from textdepth_ros.errors import CheckpointError
from textdepth_ros.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint


def test_round_trip_is_bit_exact_and_rebuilds_the_model_alone(tmp_path):
    model = tiny_model(seed=3).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, extra={"epoch": 7})
    loaded, extra = load_checkpoint(path)  # no model given: built from the stored config
    assert extra == {"epoch": 7}
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    x = images(1)
    with torch.no_grad():
        assert torch.equal(model(x, texts=["a den"])["depth"], loaded.eval()(x, texts=["a den"])["depth"])


def test_a_variant_refuses_another_variants_checkpoint_and_says_what_differs(tmp_path):
    path = save_checkpoint(tmp_path / "full.safetensors", tiny_model("full"))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, model=tiny_model("baseline"))
    message = str(err.value)
    assert "variant full" in message and "variant baseline" in message
    assert re.search(r"not in model \(.*trca \d+", message) and re.search(r"text_encoder \d+", message)


def test_shape_mismatch_is_named(tmp_path):
    from textdepth_ros.model import build_model
    from textdepth_ros.model.config import load_model_config

    cfg = load_model_config("tiny")
    cfg["bins"]["n_bins"] = 128
    path = save_checkpoint(tmp_path / "b128.safetensors", build_model(cfg, pretrained=False))
    with pytest.raises(CheckpointError, match=r"shape differs.*head\.logits\.weight"):
        load_checkpoint(path, model=tiny_model())


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"\x00" * 64])
def test_corrupt_files_give_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(path)


def test_foreign_safetensors_and_missing_files(tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a textdepth_ros checkpoint"):
        read_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.safetensors")


def textdepth(*args):
    return subprocess.run([sys.executable, "-m", "textdepth_ros.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_predict_writes_depth_of_the_image_size_and_a_preview(tmp_path):
    model = tiny_model(seed=5)
    ckpt = save_checkpoint(tmp_path / "m.safetensors", model)
    rng = np.random.default_rng(0)
    image = (rng.random((75, 101, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "img.png"), image)
    out = tmp_path / "out" / "depth.npy"
    result = textdepth("predict", "--checkpoint", ckpt, "--image", tmp_path / "img.png",
                       "--text", "a kitchen", "--out", out, "--device", "cpu", "--uncertainty")
    assert result.returncode == 0, result.stderr
    depth = np.load(out)
    assert depth.shape == (75, 101) and depth.dtype == np.float32
    assert np.all((depth > 1e-3) & (depth < 10))
    preview = cv2.imread(str(out.with_suffix(".png")))
    assert preview.shape == (75, 101, 3)
    assert np.load(tmp_path / "out" / "depth_uncertainty.npy").shape == (75, 101)
    assert "UNTRAINED" not in result.stderr
    # The CLI computes what the model computes.
    rgb = cv2.cvtColor(cv2.imread(str(tmp_path / "img.png")), cv2.COLOR_BGR2RGB)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255, texts=["a kitchen"])
    assert np.allclose(depth, expected["depth"][0, 0].numpy(), atol=1e-5)


def test_predict_without_checkpoint_warns_untrained_and_errors_are_one_line(tmp_path, capsys):
    from textdepth_ros.cli import main

    cv2.imwrite(str(tmp_path / "img.png"), np.zeros((40, 50, 3), np.uint8))
    ok = textdepth("predict", "--image", tmp_path / "img.png", "--out", tmp_path / "d.npy")
    assert ok.returncode == 0 and "UNTRAINED" in ok.stderr
    bad = textdepth("predict", "--image", tmp_path / "missing.png", "--out", tmp_path / "d.npy")
    assert bad.returncode == 2, bad.stderr  # the program, as a user runs it
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr, bad.stderr
    capsys.readouterr()
    for args in (["--checkpoint", tmp_path / "no.safetensors"], ["--config", "paper"], ["--device", "tpu"]):
        # the same main() in this process: each program start costs seconds
        code = main(["predict", "--image", str(tmp_path / "img.png"), "--out", str(tmp_path / "d2.npy"), *map(str, args)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "textdepth predict: error: " in err, (args, err)
    assert not (tmp_path / "d2.npy").exists()


def test_info_counts_the_paper_config_without_allocating_it():
    result = textdepth("info", "--config", "config/model/paper.yaml", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    params = report["parameters"]
    assert 190e6 < params["backbone"] < 200e6  # Swin-L
    assert 120e6 < params["text_encoder"] < 127e6  # CLIP ViT-L/14 text tower
    assert params["total"] == sum(params[p] for p in ("backbone", "text_encoder", "trca", "decoder", "tbcp", "head"))
    assert params["trainable"] == params["total"] - params["text_encoder"]
    assert report["flops"]["total"] > report["flops"]["backbone"] > 4e11
