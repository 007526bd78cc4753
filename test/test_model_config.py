"""Model configs and checkpoints from files nobody vetted: validated before anything is
allocated or downloaded, one clear error naming the key or tensor."""
import json
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from textdepth_ros.errors import CheckpointError, UserError
from textdepth_ros.model import build_model
from textdepth_ros.model.checkpoint import FORMAT, load_checkpoint, read_checkpoint, save_checkpoint
from textdepth_ros.model.config import load_model_config
from textdepth_ros.model.network import MAX_PARAMETERS

NETWORK_EVENTS = []
_recording = [False]


def _audit(event, args):
    if _recording[0] and event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        NETWORK_EVENTS.append((event, args))


sys.addaudithook(_audit)  # Python's own audit events: any socket use shows up here


def tiny_cfg():
    return load_model_config("tiny")


def set_key(cfg, dotted, value):
    *sections, key = dotted.split(".")
    node = cfg
    for section in sections:
        node = node[section]
    node[key] = value
    return cfg


def write_checkpoint(path, config, tensors=None):
    """A safetensors file laid out as save_checkpoint writes it, with any config inside."""
    metadata = {"format": FORMAT, "config": config if isinstance(config, str) else json.dumps(config), "extra": "{}"}
    save_file(tensors or {"unused": torch.zeros(1)}, str(path), metadata=metadata)
    return path


def textdepth(*args):
    return subprocess.run([sys.executable, "-m", "textdepth_ros.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def textdepth_here(capsys, *args):
    """The same `textdepth` main() in this process, as a CompletedProcess: for the error
    cases (each program start costs seconds; `textdepth()` covers the program itself)."""
    from textdepth_ros.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse
        code = exc.code
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def assert_one_line(result):
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr


# ------------------------------------------------------------------ ranges and types
@pytest.mark.parametrize("key, value", [
    ("bins.n_bins", 1_000_000),          # 3.1 GB of decoder weights
    ("bins.n_bins", 1_000_000_000),      # 4 TB
    ("bins.n_bins", 1e6),                # a float where an integer belongs
    ("bins.n_bins", 0),
    ("decoder.window_size", 0),
    ("decoder.sam_heads", [0, 2, 4, 8]),
    ("decoder.sam_dims", [32, 64, 128]),
    ("decoder.pool_scales", []),
    ("backbone.img_size", [480]),
    ("backbone.drop_path_rate", float("nan")),
    ("bins.dataset_max", "10"),
    ("trca", "yes"),
    ("text_encoder.cache_size", -1),
    ("text_encoder.text_cfg.heads", 0),
])
def test_a_checkpoint_config_out_of_range_is_refused_before_any_tensor_is_read(tmp_path, key, value):
    cfg = set_key(tiny_cfg(), key, value)
    # No tensors at all: the config is refused from the header alone, before a model exists.
    path = write_checkpoint(tmp_path / "bad.safetensors", cfg)
    assert path.stat().st_size < 2000
    with pytest.raises(CheckpointError, match=rf"its model config: {key.replace('.', '[.]')} must be"):
        load_checkpoint(path)


def test_cross_key_rules_are_one_error_each():
    for key, value, message in [
        ("decoder.sam_heads", [3, 2, 4, 8], "divisible by its heads"),
        ("text_encoder.text_cfg.heads", 3, "not divisible by its heads"),
        ("text_encoder.text_cfg.context_length", 16, "shorter than the 77 tokens"),
        ("bins.fixed_min", 20.0, "dataset_min < fixed_min < dataset_max"),
    ]:
        with pytest.raises(UserError, match=message):
            load_model_config(set_key(tiny_cfg(), key, value))


def test_the_total_size_is_capped_before_allocating(tmp_path):
    # Every key within its own bounds, but 64 layers of width 4096 are ~13 G parameters.
    cfg = set_key(tiny_cfg(), "text_encoder.text_cfg", dict(context_length=77, vocab_size=49408, width=4096,
                                                            heads=64, layers=64))
    with pytest.raises(UserError, match=rf"parameters, over the limit of {MAX_PARAMETERS / 1e6:,.0f} M"):
        build_model(cfg, pretrained=False)
    path = write_checkpoint(tmp_path / "huge.safetensors", cfg)
    with pytest.raises(UserError, match="over the limit"):
        load_checkpoint(path)


# ----------------------------------------------------------------- unknown keys
def test_a_typo_in_a_yaml_config_is_an_error_with_a_suggestion(tmp_path, tiny_config_path):
    cfg = yaml.safe_load(tiny_config_path.read_text())
    cfg["bins"]["n_bin"] = 128  # typo next to the real n_bins: used to be ignored
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = textdepth("info", "--config", path)
    assert_one_line(result)
    assert "unknown key 'bins.n_bin'" in result.stderr and "did you mean 'bins.n_bins'?" in result.stderr
    assert str(path) in result.stderr
    cfg = tiny_cfg()
    cfg["tcbp"] = False
    with pytest.raises(UserError, match=r"unknown key 'tcbp' in the top level \(did you mean 'tbcp'\?\)"):
        load_model_config(cfg)
    with pytest.raises(UserError, match=r"unknown key 'text_encoder.text_cfg.hf_model_name'"):
        load_model_config(set_key(tiny_cfg(), "text_encoder.text_cfg.hf_model_name", "attacker/model"))


# ----------------------------------------------------------- no downloads from names
@pytest.mark.parametrize("key, value", [
    ("backbone.timm_name", "hf-hub:attacker/evil-swin"),
    ("text_encoder.clip_model", "hf-hub:attacker/evil-clip"),
    ("text_encoder.tokenizer", "hf-hub:attacker/evil-tokenizer"),
    ("text_encoder.tokenizer", "ViT-B-16-SigLIP"),     # built in, but its tokenizer downloads
    ("text_encoder.clip_model", "roberta-ViT-B-32"),   # built in, but its text tower is a HF download
    ("text_encoder.tokenizer", "local-dir:/etc"),
])
def test_hub_names_in_a_config_are_refused_without_touching_the_network(tmp_path, key, value):
    cfg = set_key(tiny_cfg(), key, value)
    path = write_checkpoint(tmp_path / "hub.safetensors", cfg)
    NETWORK_EVENTS.clear()
    _recording[0] = True
    try:
        with pytest.raises(UserError, match=key.replace(".", "[.]")):
            build_model(cfg, pretrained=False)
        with pytest.raises(CheckpointError, match=key.replace(".", "[.]")):
            load_checkpoint(path)
    finally:
        _recording[0] = False
    assert NETWORK_EVENTS == []


def test_hf_hub_offline_forbids_weight_downloads_without_trying(monkeypatch):
    from textdepth_ros.errors import WeightsUnavailableError
    from textdepth_ros.model.text_encoder import ClipTextEncoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    NETWORK_EVENTS.clear()
    _recording[0] = True
    try:
        with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE"):
            ClipTextEncoder._locate("openai", "ViT-B-32")  # the open_clip tag a user's YAML may name
    finally:
        _recording[0] = False
    assert NETWORK_EVENTS == []


def test_unknown_names_get_a_did_you_mean():
    with pytest.raises(UserError, match=r"did you mean 'swin_tiny_patch4_window7_224'"):
        load_model_config(set_key(tiny_cfg(), "backbone.timm_name", "swin_tiny_patch4_window7_244"))
    with pytest.raises(UserError, match=r"did you mean .*'ViT-L-14'"):
        load_model_config(set_key(tiny_cfg(), "text_encoder.tokenizer", "ViT-L-41"))


def test_a_checkpoint_never_carries_download_sources(tmp_path):
    cfg = tiny_cfg()
    cfg["backbone"]["pretrained"] = "hub"
    cfg["text_encoder"]["pretrained"] = "openai"
    model = build_model(cfg, pretrained=False)
    path = save_checkpoint(tmp_path / "m.safetensors", model)
    _, config, _ = read_checkpoint(path)
    assert config["backbone"]["pretrained"] is None and config["text_encoder"]["pretrained"] is None


# ---------------------------------------------------------------- bad weights
@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "good.safetensors", build_model("tiny", pretrained=False))


def rewrite_tensor(source, target, name, change):
    with safe_open(str(source), framework="pt") as f:
        metadata = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    state[name] = change(state[name].clone())
    save_file(state, str(target), metadata=metadata)
    return target


def with_nan(t):
    t.view(-1)[7] = float("nan")
    return t


def with_inf(t):
    t.view(-1)[0] = float("-inf")
    return t


@pytest.mark.parametrize("change, message", [
    (with_nan, r"tensor 'head.logits.weight' holds 1 NaN/inf values"),
    (with_inf, r"tensor 'head.logits.weight' holds 1 NaN/inf values"),
    (lambda t: t.to(torch.int8), r"tensor 'head.logits.weight' is int8, expected float32"),
    (lambda t: t.to(torch.float64), r"tensor 'head.logits.weight' is float64, expected float32"),
    (lambda t: t.to(torch.int64), r"tensor 'head.logits.weight' is int64, expected float32"),
])
def test_corrupt_or_foreign_weights_are_refused_naming_the_tensor(tmp_path, good_checkpoint, change, message):
    path = rewrite_tensor(good_checkpoint, tmp_path / "bad.safetensors", "head.logits.weight", change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
    if "int64" not in message:  # without a model, int64 may be a counter (BatchNorm's)
        with pytest.raises(CheckpointError, match=message.split(",")[0]):
            read_checkpoint(path)


def test_half_precision_checkpoints_still_load(tmp_path, good_checkpoint):
    path = rewrite_tensor(good_checkpoint, tmp_path / "half.safetensors", "head.logits.weight",
                          lambda t: t.to(torch.bfloat16))
    model, _ = load_checkpoint(path)
    assert model.head.logits.weight.dtype == torch.float32


def test_pretrained_swin_weights_with_nan_are_refused(tmp_path):
    import timm

    from textdepth_ros.model.backbone import SwinBackbone

    state = timm.create_model("swin_tiny_patch4_window7_224", num_classes=0).state_dict()
    state["layers.1.blocks.0.mlp.fc1.weight"][3, 4] = float("nan")
    torch.save(state, tmp_path / "swin.pth")
    backbone = SwinBackbone("swin_tiny_patch4_window7_224")
    with pytest.raises(CheckpointError, match=r"Swin backbone file .*swin.pth: tensor 'layers.1.blocks.0.mlp.fc1.weight' "
                                              r"holds 1 NaN/inf values"):
        backbone.load_pretrained(str(tmp_path / "swin.pth"))


def test_predict_with_nan_weights_is_one_line(tmp_path, good_checkpoint, capsys):
    import cv2
    import numpy as np

    path = rewrite_tensor(good_checkpoint, tmp_path / "nan.safetensors", "head.logits.weight", with_nan)
    cv2.imwrite(str(tmp_path / "img.png"), np.zeros((32, 32, 3), np.uint8))
    result = textdepth_here(capsys, "predict", "--checkpoint", path, "--image", tmp_path / "img.png",
                            "--out", tmp_path / "d.npy")
    assert_one_line(result)
    assert "head.logits.weight" in result.stderr and not (tmp_path / "d.npy").exists()


# ---------------------------------------------------------------- JSON and YAML
def test_deeply_nested_json_in_a_checkpoint_is_one_line(tmp_path, capsys):
    deep = "[" * 200_000 + "]" * 200_000
    path = write_checkpoint(tmp_path / "deep.safetensors", deep)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        read_checkpoint(path)
    # The safetensors header itself (parsed by the safetensors library).
    header = ('{"a":' * 200_000 + "1" + "}" * 200_000).encode()
    raw = tmp_path / "deep_header.safetensors"
    raw.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(raw)
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "img.png"), np.zeros((32, 32, 3), np.uint8))
    for checkpoint in (path, raw):
        result = textdepth_here(capsys, "predict", "--checkpoint", checkpoint, "--image", tmp_path / "img.png",
                                "--out", tmp_path / "d.npy")
        assert_one_line(result)


def test_yaml_that_is_not_utf8_or_absurdly_nested_is_one_line(tmp_path, capsys):
    from textdepth_ros.training.config import load_train_config

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 200_000 + "]" * 200_000 + "\n")
    for path in (latin1, deep):
        assert_one_line(textdepth_here(capsys, "info", "--config", path))
        with pytest.raises(UserError, match="training config"):
            load_train_config(path)
