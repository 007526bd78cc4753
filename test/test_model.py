"""The network: shapes, bins, text behaviour, gradients, ablation variants."""
import pytest
import torch

from model_helpers import images, tiny_model
from textdepth_ros.model.config import VARIANTS
from textdepth_ros.model.tbcp import bin_centres, bin_widths, gated_fusion, text_depth_range
from textdepth_ros.model.trca import text_guided_reverse_cross_attention


@pytest.fixture(scope="module")
def model():
    return tiny_model().eval()


@pytest.mark.parametrize("hw", [(480, 640), (416, 544), (375, 500), (1, 1), (33, 47)])
def test_output_shapes_match_input_at_any_size(model, hw):
    with torch.no_grad():
        out = model(images(2, *hw), texts=["a bedroom", "a kitchen"])
    assert out["depth"].shape == (2, 1, *hw)
    assert out["uncertainty"].shape == (2, 1, *hw)
    assert out["bin_centers"].shape == (2, 256)
    assert out["depth"].dtype == torch.float32


def test_bins_are_ordered_inside_the_text_range_inside_the_dataset_range(model):
    with torch.no_grad():
        out = model(images(3), texts=["a bathroom", "a warehouse", "a closet"])
    centres, (d_min, d_max) = out["bin_centers"], out["depth_range"].T
    assert (centres[:, 1:] > centres[:, :-1]).all()
    assert (centres[:, 0] > d_min).all() and (centres[:, -1] < d_max).all()
    assert (d_min > 1e-3).all() and (d_max < 10.0).all() and (d_min < d_max).all()
    depth = out["depth"]
    assert (depth >= d_min.view(-1, 1, 1, 1) - 1e-4).all() and (depth <= d_max.view(-1, 1, 1, 1) + 1e-4).all()
    assert (out["uncertainty"] >= 0).all()


def test_bin_equations_by_hand():
    widths = bin_widths(torch.tensor([[0.0, 0.0, 0.0, 0.0]]))
    assert torch.allclose(widths.sum(-1), torch.ones(1))
    centres = bin_centres(widths, torch.tensor([1.0]), torch.tensor([5.0]))
    # four equal bins of 1 m over [1, 5]: centres at 1.5, 2.5, 3.5, 4.5 (eq. 5)
    assert torch.allclose(centres, torch.tensor([[1.5, 2.5, 3.5, 4.5]]))
    d_min, d_max = text_depth_range(torch.tensor([[0.0, 0.0]]), 0.0, 10.0)
    assert torch.allclose(d_max, torch.tensor([5.0])) and torch.allclose(d_min, torch.tensor([2.5]))


def test_bin_widths_sum_to_one_in_the_model(model):
    with torch.no_grad():
        q4 = torch.randn(2, model.config["decoder"]["pqi_channels"], 2, 3)
        text = model.encode_text(["a", "b"])
        fused = gated_fusion(model.tbcp.align(q4).mean(dim=(2, 3)), text, model.tbcp.gate)
        widths = bin_widths(model.tbcp.widths_mlp(fused))
    assert torch.allclose(widths.sum(-1), torch.ones(2), atol=1e-6)
    assert (widths > 0).all()


def test_gate_mixes_visual_and_text():
    gate = torch.nn.Linear(4, 2)
    torch.nn.init.zeros_(gate.weight)
    torch.nn.init.constant_(gate.bias, 0.0)  # sigmoid(0) = 0.5: the mean of both
    out = gated_fusion(torch.tensor([[2.0, 4.0]]), torch.tensor([[0.0, 2.0]]), gate)
    assert torch.allclose(out, torch.tensor([[1.0, 3.0]]))


def test_trca_attention_matches_equation_1():
    q, k, v = torch.randn(1, 5, 8), torch.randn(1, 7, 8), torch.randn(1, 7, 8)
    expected = torch.softmax(q @ k.transpose(1, 2) / 8 ** 0.5, dim=-1) @ v
    assert torch.allclose(text_guided_reverse_cross_attention(q, k, v), expected, atol=1e-6)


def test_different_texts_give_different_depth_same_text_same_depth_and_one_encoder_call():
    model = tiny_model().eval()
    x = images(1)
    with torch.no_grad():
        a1 = model(x, texts=["a small bathroom"])["depth"]
        calls = model.text_encoder.calls
        a2 = model(x, texts=["a small bathroom"])["depth"]
        assert model.text_encoder.calls == calls  # cached: no encoder call
        b = model(x, texts=["a huge empty warehouse hall"])["depth"]
    assert torch.equal(a1, a2)
    assert not torch.allclose(a1, b)
    assert model.text_encoder.calls == calls + 1


def test_text_cache_is_bounded_and_long_text_is_truncated():
    model = tiny_model().eval()
    model.text_encoder.cache_size = 3
    for i in range(10):
        model.encode_text([f"room {i}"])
    assert len(model.text_encoder._cache) == 3
    long_text = "a room with " + "many chairs and " * 200
    assert model.text_encoder.token_count(long_text) > 77
    assert model.encode_text([long_text]).shape == (1, model.text_encoder.width)


def test_loading_other_weights_forgets_the_cached_text_embeddings():
    model, other = tiny_model(seed=0).eval(), tiny_model(seed=1).eval()
    stale = model.encode_text(["a kitchen"])
    model.load_state_dict(other.state_dict())
    fresh = model.encode_text(["a kitchen"])
    assert torch.equal(fresh, other.encode_text(["a kitchen"])) and not torch.equal(fresh, stale)


def test_gradients_reach_text_modules_but_not_the_frozen_text_tower():
    model = tiny_model().train()
    out = model(images(2), texts=["a bedroom", "an office"])
    out["depth"].mean().backward()
    for name in ("trca.to_q.weight", "trca.to_k.weight", "trca.mlp.0.weight", "tbcp.gate.weight",
                 "tbcp.widths_mlp.0.weight", "tbcp.range_head.0.weight", "backbone.swin.patch_embed.proj.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert all(p.grad is None and not p.requires_grad for p in model.text_encoder.parameters())
    assert not model.text_encoder.tower.training  # frozen tower stays in eval mode


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_variant_drops_exactly_its_missing_modules(variant):
    full = {k: v.shape for k, v in tiny_model("full").state_dict().items()}
    model = tiny_model(variant)
    own = {k: v.shape for k, v in model.state_dict().items()}
    prefixes = {k.split(".")[0] for k in own}
    assert ("trca" in prefixes) == VARIANTS[variant]["trca"]
    assert ("text_encoder" in prefixes) == (VARIANTS[variant]["trca"] or VARIANTS[variant]["tbcp"])
    # Everything but the text modules and the bin predictor is shared with the full model.
    shared = {k for k in own if k.split(".")[0] not in ("trca", "tbcp", "text_encoder")}
    assert shared == {k for k in full if k.split(".")[0] not in ("trca", "tbcp", "text_encoder")}
    assert all(own[k] == full[k] for k in shared)
    if VARIANTS[variant]["tbcp"]:
        assert {k for k in own if k.startswith("tbcp.")} == {k for k in full if k.startswith("tbcp.")}
    else:  # PixelFormer's BCP: GAP(Q4) -> MLP, no gate, no text range
        assert not any(k.startswith(("tbcp.gate", "tbcp.range_head")) for k in own)
    with torch.no_grad():
        out = model.eval()(images(1), texts=["a kitchen"])
    assert out["depth"].shape == (1, 1, 64, 96)


def test_baseline_runs_without_text_and_has_pixelformer_fixed_range():
    model = tiny_model("baseline").eval()
    with torch.no_grad():
        out = model(images(1))
    assert torch.allclose(out["depth_range"], torch.tensor([[0.1, 10.0]]))


def test_fixed_range_ablation_of_tbcp():
    from textdepth_ros.model import build_model
    from textdepth_ros.model.config import load_model_config

    cfg = load_model_config("tiny")
    cfg["text_range"] = False
    model = build_model(cfg, pretrained=False).eval()
    assert not any(k.startswith("tbcp.range_head") for k in model.state_dict())
    with torch.no_grad():
        out = model(images(1), texts=["a bedroom"])
    assert torch.allclose(out["depth_range"], torch.tensor([[0.1, 10.0]]))


def test_bf16_autocast_on_cpu_gives_close_depth(model):
    x = images(1)
    with torch.no_grad():
        ref = model(x, texts=["a bedroom"])["depth"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x, texts=["a bedroom"])["depth"]
    assert half.dtype == torch.float32
    assert (half - ref).abs().max() < 0.5


def test_tbcp_starts_at_pixelformers_range(model):
    """A fresh TBCP's range is BCP's [fixed_min, ~dataset_max] whatever the text, so the
    paper model started from PixelFormer's weights begins with PixelFormer's bins range."""
    with torch.no_grad():
        out = model(images(2), texts=["a bathroom", "a warehouse"])
    d_min, d_max = out["depth_range"].T
    assert torch.allclose(d_min, torch.full_like(d_min, 0.1), atol=2e-3)
    assert torch.allclose(d_max, torch.full_like(d_max, 9.82), atol=2e-2)
