"""Real pretrained-loading code paths, on files in the real formats written here:
an open_clip CLIP state dict, timm and Microsoft Swin checkpoints."""
import re

import open_clip
import pytest
import timm
import torch
from safetensors.torch import save_file

from textdepth_ros.errors import CheckpointError, WeightsUnavailableError
from textdepth_ros.model.backbone import SwinBackbone
from textdepth_ros.model.config import load_model_config
from textdepth_ros.model.text_encoder import ClipTextEncoder

TINY_TEXT = dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=2)


def small_clip(seed=0):
    """A whole open_clip CLIP (vision tower too) with the tiny config's text tower."""
    torch.manual_seed(seed)
    vision = dict(image_size=32, layers=1, width=64, patch_size=16, head_width=32)
    return open_clip.model.CLIP(embed_dim=64, vision_cfg=vision, text_cfg=TINY_TEXT).eval()


@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_text_tower_loads_from_a_clip_checkpoint_and_matches_open_clip(tmp_path, suffix):
    clip = small_clip()
    path = tmp_path / f"open_clip_model{suffix}"
    state = {k: v.contiguous() for k, v in clip.state_dict().items()}
    torch.save(state, path) if suffix == ".bin" else save_file(state, str(path))
    encoder = ClipTextEncoder(load_model_config("tiny")["text_encoder"])
    report = encoder.load_pretrained(str(path))
    assert report["loaded"] == len(encoder.tower.state_dict()) - 0
    texts = ["a bedroom with a bed", "a kitchen"]
    tokens = open_clip.get_tokenizer("ViT-L-14")(texts)
    with torch.no_grad():
        expected = clip.encode_text(tokens, normalize=True)
    assert torch.allclose(encoder(texts), expected, atol=1e-6)


def test_text_tower_rejects_a_file_of_another_width(tmp_path):
    other = open_clip.model.CLIP(embed_dim=32, vision_cfg=dict(image_size=32, layers=1, width=64, patch_size=16,
                                                               head_width=32),
                                 text_cfg=dict(TINY_TEXT, width=32))
    path = tmp_path / "other.bin"
    torch.save(other.state_dict(), path)
    encoder = ClipTextEncoder(load_model_config("tiny")["text_encoder"])
    with pytest.raises(WeightsUnavailableError, match="shapes differ"):
        encoder.load_pretrained(str(path))


def test_openai_tag_offline_is_one_clear_error():
    encoder_cfg = dict(load_model_config("tiny")["text_encoder"], clip_model="ViT-B-32",
                       text_cfg={}, quick_gelu=True)
    with pytest.raises(WeightsUnavailableError, match="model/"):
        ClipTextEncoder._locate("openai", encoder_cfg["clip_model"])


def test_missing_local_file_names_the_file_and_the_model_folder():
    with pytest.raises(WeightsUnavailableError, match=r"no_such_clip\.bin.*model"):
        ClipTextEncoder._locate("no_such_clip.bin", None)


def to_microsoft_layout(timm_state: dict, model) -> dict:
    """Microsoft's original Swin release: downsample at the end of a stage, buffers kept,
    classifier 'head.*', everything under 'model'."""
    out = {}
    for k, v in timm_state.items():
        k = re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", k)
        out[k.replace("head.fc.", "head.")] = v
    for name, buf in model.named_buffers():  # the original release stored these
        if "relative_position_index" in name:
            out[re.sub(r"layers\.(\d+)\.downsample", "", name)] = buf
    return {"model": out}


@pytest.mark.parametrize("layout", ["timm", "microsoft"])
def test_swin_loads_timm_and_microsoft_checkpoints(tmp_path, layout):
    torch.manual_seed(1)
    source = timm.create_model("swin_tiny_patch4_window7_224", num_classes=10)
    state = source.state_dict()
    if layout == "microsoft":
        state = to_microsoft_layout(state, source)
        assert "layers.0.downsample.reduction.weight" in state["model"]
    path = tmp_path / "swin.pth"
    torch.save(state, path)
    backbone = SwinBackbone("swin_tiny_patch4_window7_224")
    report = backbone.load_pretrained(str(path))
    assert report["missing"] == []
    ours = backbone.swin.state_dict()
    for k, v in source.state_dict().items():
        if k.startswith(("head.", "norm.")) or "relative_position_index" in k:
            continue
        assert torch.equal(ours[k], v), k


def test_our_swin_equals_timm_where_window_order_does_not_matter(tmp_path):
    """Our Swin pads before the cyclic shift (PixelFormer's order), timm after; at 448x448
    every stage (112, 56, 28, 14) is a whole number of 7x7 windows, so both orders agree and
    timm's weights must give timm's features, stage by stage."""
    torch.manual_seed(2)
    source = timm.create_model("swin_tiny_patch4_window7_224", num_classes=0, img_size=448, features_only=True).eval()
    path = tmp_path / "swin.pth"
    torch.save({k.replace("layers_", "layers."): v for k, v in source.state_dict().items()}, path)
    backbone = SwinBackbone("swin_tiny_patch4_window7_224")
    backbone.load_pretrained(str(path))
    images = torch.randn(1, 3, 448, 448)
    with torch.no_grad():
        expected = source(images)  # NHWC, no norm
        ours = backbone.swin(images)
    for stage, (a, b) in enumerate(zip(ours, expected)):
        assert a.shape == b.shape, stage
        assert ((a - b).abs().max() / b.abs().max()) < 1e-5, stage


def test_a_swin_of_another_size_is_refused_with_the_shapes(tmp_path):
    path = tmp_path / "swin_base.pth"
    torch.save(timm.create_model("swin_base_patch4_window7_224", num_classes=0).state_dict(), path)
    with pytest.raises(WeightsUnavailableError, match="shapes differ"):
        SwinBackbone("swin_tiny_patch4_window7_224").load_pretrained(str(path))


def test_pickled_code_in_a_weights_file_is_refused_not_run(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": Exploit()}, path)
    backbone = SwinBackbone("swin_tiny_patch4_window7_224")
    with pytest.raises(CheckpointError, match="cannot read Swin backbone"):
        backbone.load_pretrained(str(path))
    assert not __import__("os").path.exists("/tmp/textdepth_pwned_marker")


class Exploit:
    def __reduce__(self):
        import os

        return (os.makedirs, ("/tmp/textdepth_pwned_marker",))
