"""Window attentions keep their additive mask between inference forwards
(model/attention_bias.py): exactly the values of building it per forward, with fewer ops,
and never kept where the weights can change (training) nor used once they have changed
(optimizer step, load_state_dict, .to(dtype), a new copy). The CUDA twins (aligned rows
taken by SDPA without a copy, nothing kept during a graph capture) are in test_cuda.py."""
import copy

import numpy as np
import pytest
import torch

from textdepth_ros.serving.inference import DepthEstimator
from textdepth_ros.model.attention_bias import AttentionBias, aligned_empty, keep_attention_biases, per_forward_mask
from textdepth_ros.model.swin import WindowSelfAttention
from textdepth_ros.model.windows import shift_mask

from model_helpers import CountOps, images, tiny_model

TEXT = "a kitchen with a table"


def attention(window=7, heads=3, seed=0):
    torch.manual_seed(seed)
    return WindowSelfAttention(dim=8 * heads, heads=heads, window=window)


def kept_biases(model):
    return [m.attention_bias for m in model.modules() if isinstance(getattr(m, "attention_bias", None), AttentionBias)]


def kept_entries(model) -> int:
    return sum(len(b._entries) for b in kept_biases(model))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("shifted", [False, True], ids=["plain", "shifted"])
def test_the_kept_mask_is_the_per_forward_mask(dtype, shifted):
    attn = attention()
    table, index = attn.relative_position_bias_table, attn.relative_position_index
    shift = shift_mask(21, 28, 7, 3, "cpu") if shifted else None
    want = per_forward_mask(table, index, shift, dtype)
    bias = AttentionBias()
    bias.enabled = True
    with torch.no_grad():
        first, second = bias(table, index, shift, dtype), bias(table, index, shift, dtype)
    for got in (first, second):
        assert got.dtype == dtype and got.shape == want.shape and torch.equal(got, want)
    if not shifted:
        assert second is first  # kept, not built again


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_rows_aligned_for_cuda_hold_the_same_values(dtype):
    """The layout kept on CUDA (rows every 8 elements: SDPA's memory-efficient kernel takes
    it as it is) filled the way it is filled there: one add rounding on store."""
    attn = attention(heads=4)
    table, index = attn.relative_position_bias_table, attn.relative_position_index
    shift = shift_mask(21, 28, 7, 3, "cpu")
    bias = per_forward_mask(table, index, None, torch.float32).detach().contiguous()
    out = aligned_empty((shift.shape[0], *bias.shape), dtype, "cpu", alignment=8)
    assert out.stride(-1) == 1 and all(s % 8 == 0 for s in out.stride()[:-1]) and not out.is_contiguous()
    torch.add(bias[None], shift[:, None], out=out)
    assert torch.equal(out, per_forward_mask(table, index, shift, dtype))


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "bf16"])
def test_the_estimator_serves_the_same_depth_with_fewer_ops(fp16):
    model = tiny_model(seed=4)
    kept = DepthEstimator(model=copy.deepcopy(model), device="cpu", fp16=fp16)
    rebuilt = DepthEstimator(model=copy.deepcopy(model), device="cpu", fp16=fp16)
    attentions = keep_attention_biases(rebuilt.model, False)
    assert attentions == len(kept_biases(kept.model)) >= 8
    rng = np.random.default_rng(0)
    for _ in range(2):
        rgb = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
        got, want = kept.predict(rgb, TEXT), rebuilt.predict(rgb, TEXT)
        assert np.array_equal(got.depth, want.depth) and np.array_equal(got.uncertainty, want.uncertainty)
    counted = {}
    for name, est in (("kept", kept), ("rebuilt", rebuilt)):
        with CountOps() as counter:
            est.predict(rgb, TEXT)
        counted[name] = counter
    assert counted["kept"].ops["aten.index"] == counted["rebuilt"].ops["aten.index"] - attentions  # no gathers
    assert kept_entries(rebuilt.model) == 0 and kept_entries(kept.model) >= attentions
    if fp16:  # the bias is cast once, not per attention per forward
        assert counted["kept"].casts <= counted["rebuilt"].casts - attentions


def depth(model, x):
    with torch.inference_mode():
        return model(x, texts=[TEXT] * x.shape[0])["depth"]


def test_a_changed_weight_is_used_by_the_next_forward():
    model, x = tiny_model(seed=0).eval(), images(height=64, width=96)
    keep_attention_biases(model, True)
    depth(model, x)  # fills what is kept
    other = tiny_model(seed=1).eval()  # nothing kept: builds per forward
    model.load_state_dict(other.state_dict())
    assert torch.equal(depth(model, x), depth(other, x))
    with torch.no_grad():  # in place, as an optimizer step writes
        for m in (model, other):
            for b in (b for n, b in m.named_parameters() if n.endswith("relative_position_bias_table")):
                b.mul_(3.0)
    assert torch.equal(depth(model, x), depth(other, x))
    model.double(), other.double()
    assert torch.equal(depth(model, x.double()), depth(other, x.double()))
    twin = copy.deepcopy(model)  # the copy's tables are new tensors
    with torch.no_grad():
        for b in (b for n, b in twin.named_parameters() if n.endswith("relative_position_bias_table")):
            b.zero_()
    assert not torch.equal(depth(twin, x.double()), depth(model, x.double()))


def test_training_keeps_nothing_and_trains_the_tables():
    """A model training with the cache on (an estimator's model handed to training): the
    forward with autograd builds per forward, the tables get gradients, and an evaluation
    between steps sees the weights of the step before it."""
    model, x = tiny_model(seed=2), images(batch=2)
    keep_attention_biases(model, True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    tables = [p for n, p in model.named_parameters() if n.endswith("relative_position_bias_table")]
    for step in range(2):
        model.train()
        model(x, texts=[TEXT] * 2)["depth"].mean().backward()
        if step == 0:
            assert kept_entries(model) == 0  # with autograd nothing is kept
        assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in tables)
        optimizer.step()
        optimizer.zero_grad()
        model.eval()
        fresh = copy.deepcopy(model)
        keep_attention_biases(fresh, False)
        assert torch.equal(depth(model, x), depth(fresh, x))
        assert kept_entries(model) > 0


def test_compile_traces_the_plain_construction_without_a_graph_break():
    attn = attention().eval()
    keep_attention_biases(attn, True)
    x = torch.randn(4, 49, attn.qkv.in_features)
    mask = shift_mask(14, 14, 7, 3, "cpu")
    compiled = torch.compile(attn, backend="eager", fullgraph=True)  # fullgraph: a break is an error
    with torch.inference_mode():
        eager_out = attn(x, mask)
        assert torch.equal(compiled(x, mask), eager_out)
