"""The paper model from PixelFormer's weights: warm_start copies every tensor whose name
and shape match into the `full` variant and starts TRCA / TBCP so that the model computes
the checkpoint's depth (model/preserving_init.py) while they still learn; `textdepth train
--init-from` says what was loaded, how the new parts start, and the measured difference
(test_freeze.py runs it, with the visual path frozen as a small budget would have it)."""
import copy

import numpy as np
import pytest
import torch

from model_helpers import tiny_model
from pixelformer_reference import build_reference, save_like_pixelformer
from test_pixelformer_import import PHOTO, read_rgb, reference_depth
from textdepth_ros.cli import main as textdepth
from textdepth_ros.errors import CheckpointError
from textdepth_ros.model import build_model
from textdepth_ros.model.checkpoint import read_checkpoint, save_checkpoint
from textdepth_ros.model.config import load_model_config
from textdepth_ros.model.warm_start import describe_warm_start, warm_start
from textdepth_ros.training.freeze import freeze
from textdepth_ros.training.loss import silog_loss

VISUAL = ("backbone", "pqi", "sam", "head")
TEXT = "a photo of a coffee cup on a wooden table"


def test_full_variant_takes_the_visual_path_of_a_baseline_and_starts_its_text_modules(tmp_path):
    baseline = tiny_model("baseline", seed=1)
    path = save_checkpoint(tmp_path / "baseline.safetensors", baseline)
    fresh = tiny_model("full", seed=2).state_dict()
    model = tiny_model("full", seed=2)
    report = warm_start(model, path)
    got, source = model.state_dict(), baseline.state_dict()
    for key, value in got.items():
        if key.split(".")[0] in VISUAL:
            assert torch.equal(value, source[key]), key
        elif key.startswith("trca.mlp.2."):
            assert not value.any(), key  # TRCA's output projection starts at zero
        elif key.startswith(("trca.", "text_encoder.")):
            assert torch.equal(value, fresh[key]), key
    assert torch.equal(got["tbcp.widths_mlp.4.weight"][:, :256], source["tbcp.mlp.2.weight"])  # BCP's last layer
    assert set(report["loaded"]) == set(VISUAL)
    assert set(report["new"]) == {"text_encoder", "trca", "tbcp"}
    assert set(report["unused"]) == {"tbcp"}  # BCP's tensors, rebuilt inside TBCP
    text = describe_warm_start(report)
    assert "loaded:" in text and "trca" in text.split("new")[1]
    # the tiny text tower (64) is narrower than the queries (128): TBCP can only approximate BCP
    assert "TRCA adds zero" in text and "TBCP approximates BCP" in text


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A PixelFormer (Swin-T) checkpoint as its train.py saves it, imported; its reference
    network; a full-variant config of its size with a small text tower as wide as ViT-L/14's
    embedding (768 >= PixelFormer's 512 query channels, as in the paper config)."""
    tmp = tmp_path_factory.mktemp("pixelformer")
    reference = build_reference("tiny07", seed=4)
    save_like_pixelformer(reference, tmp / "pf.pth")
    path = tmp / "pf.safetensors"
    assert textdepth(["import-pixelformer", "--checkpoint", str(tmp / "pf.pth"), "--out", str(path)]) == 0
    _, config, _ = read_checkpoint(path)
    text_encoder = dict(load_model_config("tiny")["text_encoder"], embed_dim=768)
    config = dict(config, name="full_swin_t", trca=True, tbcp=True, text_range=True, text_encoder=text_encoder)
    return reference, path, config


@pytest.fixture(scope="module")
def warm_full(imported):
    """The full variant of that size warm-started from the imported checkpoint, and its report."""
    _, path, config = imported
    torch.manual_seed(0)
    model = build_model(config, pretrained=False)
    return model, warm_start(model, path)


def photo() -> torch.Tensor:
    return torch.from_numpy(read_rgb(PHOTO).astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def test_warm_started_full_variant_computes_pixelformers_depth_on_a_photo(imported, warm_full):
    """Its depth against PixelFormer's own forward with the imported weights, on a real
    480x640 photo (fp32, CPU): TRCA adds zero, TBCP computes BCP's bins."""
    reference, _, _ = imported
    model, report = warm_full
    assert "TRCA adds zero to E4 (output projection at zero)" in report["preserved"]
    assert any("TBCP computes BCP's bins" in note for note in report["preserved"])
    expected = reference_depth(reference, read_rgb(PHOTO))
    assert expected.std() > 0.3  # a spread of depths, so equality means something
    with torch.no_grad():
        depth = model.eval()(photo(), texts=[TEXT])["depth"][0, 0].numpy()
    difference = float((np.abs(depth - expected) / np.abs(expected)).max())
    print(f"full warm-started vs PixelFormer, coffee 480x640: max relative difference {difference:.1e}")
    assert difference <= 1e-5


def test_an_imported_pixelformer_checkpoint_fills_a_full_model_of_its_size(imported, warm_full):
    state, _, _ = read_checkpoint(imported[1])
    model, report = warm_full
    own = model.state_dict()
    assert sum(report["loaded"].values()) == sum(own[k].numel() for k in own if k.split(".")[0] in VISUAL)
    assert all(torch.equal(own[k], state[k]) for k in own if k.split(".")[0] in VISUAL)


# Eq. 1's softmax over the keys is invariant to the key bias (it adds q.b_k to a whole
# row of scores), so its gradient is zero up to rounding under any initialisation.
NO_GRADIENT_BY_DESIGN = {"trca.to_k.bias"}


def test_every_new_parameter_learns_within_two_steps(warm_full):
    """Zero starts that block their own gradient would freeze a module for good: after two
    Adam steps from the warm start, every element of every TRCA / TBCP parameter has had a
    non-zero gradient (training mode, SILog loss on a batch of two). Only TRCA and TBCP
    train, which costs least; PQI stays in training mode (in eval mode, random BatchNorm
    statistics leave some Q4 channels at zero after the ReLU, and GAP(Q4) then gives
    align's columns for them no gradient whatever the init)."""
    model = copy.deepcopy(warm_full[0])
    freeze(model, ["backbone"])
    for module in (model.pqi, model.sam, model.head):
        module.requires_grad_(False)
    new = {n: p for n, p in model.named_parameters()
           if n.startswith(("trca.", "tbcp.")) and p.requires_grad and n not in NO_GRADIENT_BY_DESIGN}
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 96, 128, generator=gen)
    gt = 1.0 + 4.0 * torch.rand(2, 1, 96, 128, generator=gen)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=4e-5)
    moved = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in new.items()}
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        silog_loss(model(images, texts=[TEXT, "a photo of a kitchen"])["depth"], gt).backward()
        for name, p in new.items():
            moved[name] |= p.grad != 0
        optimizer.step()
    stuck = {n: int((~m).sum()) for n, m in moved.items() if not m.all()}
    assert not stuck, f"elements without a gradient in two steps: {stuck}"


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
