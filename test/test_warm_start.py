"""The paper model from PixelFormer's weights: warm_start copies every tensor whose name
and shape match into the `full` variant and leaves TRCA / TBCP at their init; `textdepth
train --init-from` uses it and says what was loaded and what is new."""
import pytest
import torch

from model_helpers import tiny_model
from pixelformer_reference import build_reference, save_like_pixelformer
from textdepth_ros.cli import main as textdepth
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.errors import CheckpointError
from textdepth_ros.model import build_model
from textdepth_ros.model.checkpoint import read_checkpoint, save_checkpoint
from textdepth_ros.model.config import load_model_config
from textdepth_ros.model.warm_start import describe_warm_start, warm_start

VISUAL = ("backbone", "pqi", "sam", "head")


def test_full_variant_takes_the_visual_path_of_a_baseline_and_keeps_its_text_modules(tmp_path):
    baseline = tiny_model("baseline", seed=1)
    path = save_checkpoint(tmp_path / "baseline.safetensors", baseline)
    fresh = tiny_model("full", seed=2).state_dict()
    model = tiny_model("full", seed=2)
    report = warm_start(model, path)
    got, source = model.state_dict(), baseline.state_dict()
    for key, value in got.items():
        expected = source[key] if key.split(".")[0] in VISUAL else fresh[key]
        assert torch.equal(value, expected), key
    assert set(report["loaded"]) == set(VISUAL)
    assert set(report["new"]) == {"text_encoder", "trca", "tbcp"}
    assert set(report["unused"]) == {"tbcp"}  # PixelFormer's BCP has no place in TBCP
    text = describe_warm_start(report)
    assert "loaded:" in text and "trca" in text.split("new")[1]


def test_an_imported_pixelformer_checkpoint_fills_a_full_model_of_its_size(tmp_path):
    reference = build_reference("tiny07", seed=4)
    save_like_pixelformer(reference, tmp_path / "pf.pth")
    imported = tmp_path / "pf.safetensors"
    assert textdepth(["import-pixelformer", "--checkpoint", str(tmp_path / "pf.pth"), "--out", str(imported)]) == 0
    state, config, _ = read_checkpoint(imported)
    # the paper model at Swin-T size: PixelFormer's decoder, the tiny text tower
    config = dict(config, name="full_swin_t", trca=True, tbcp=True, text_range=True,
                  text_encoder=load_model_config("tiny")["text_encoder"])
    model = build_model(config, pretrained=False)
    report = warm_start(model, imported)
    own = model.state_dict()
    assert sum(report["loaded"].values()) == sum(own[k].numel() for k in own if k.split(".")[0] in VISUAL)
    assert all(torch.equal(own[k], state[k]) for k in own if k.split(".")[0] in VISUAL)


def test_nothing_in_common_is_an_error(tmp_path):
    cfg = load_model_config("tiny", "baseline")
    cfg["backbone"]["timm_name"] = "swin_base_patch4_window7_224"
    cfg["decoder"].update(pqi_channels=64, sam_dims=[16, 32, 64, 128], sam_heads=[2, 4, 8, 16])
    cfg["bins"].update(n_bins=64, mlp_hidden=32)
    path = save_checkpoint(tmp_path / "other.safetensors", build_model(cfg, pretrained=False))
    model = tiny_model("full")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="no weight has the same name and shape"):
        warm_start(model, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_train_init_from_reports_and_starts_from_the_checkpoint(repo_root, tmp_path, capsys):
    baseline = tiny_model("baseline", seed=5)
    path = save_checkpoint(tmp_path / "baseline.safetensors", baseline)
    data = generate_dataset(tmp_path / "syn", n_train=2, n_test=0, height=64, width=96, seed=1)
    out = tmp_path / "run"
    code = textdepth(["train", "--config", str(repo_root / "config/train_tiny.yaml"), "--out", str(out),
                      "--init-from", str(path), "--set", f"data.root={data['root']}",
                      "--set", f"data.train_list={data['train_list']}", "--set", "data.test_list=null",
                      "--set", "train.batch_size=2", "--set", "train.max_steps=1", "--set", "train.lr=0",
                      "--set", "variant=full"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"initialised from {path}" in printed and "loaded:" in printed and "new (own init):" in printed
    trained, _, _ = read_checkpoint(out / "last.safetensors")
    source = baseline.state_dict()
    # lr 0: the one step leaves the weights where --init-from put them (BN statistics move)
    for key in ("backbone.swin.patch_embed.proj.weight", "sam.stages.0.block.attn.to_q.weight", "head.logits.weight"):
        assert torch.equal(trained[key], source[key]), key
