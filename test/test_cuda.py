"""CUDA paths (device selection, pinned memory, fp16 autocast, checkpoint to GPU).
Skipped without a GPU; run on a CUDA machine by bench/gpu.sh. The CPU twins of these
paths (bf16 autocast, CPU fallback) are tested everywhere."""
import numpy as np
import pytest
import torch

from model_helpers import tiny_model
from textdepth_ros.devices import resolve_device
from textdepth_ros.serving.inference import DepthEstimator
from textdepth_ros.model.checkpoint import load_checkpoint, save_checkpoint

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cuda_request_without_cuda_falls_back_with_one_warning():
    if torch.cuda.is_available():
        assert resolve_device("cuda") == (torch.device("cuda"), None)
    else:
        device, warning = resolve_device("cuda:0")
        assert device.type == "cpu" and "CUDA is not available" in warning


@cuda
def test_fp16_on_cuda_matches_fp32_and_keeps_float32_outputs(tmp_path):
    ckpt = save_checkpoint(tmp_path / "m.safetensors", tiny_model(seed=2))
    rgb = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    ref = DepthEstimator(checkpoint=ckpt, device="cuda").predict(rgb, "a bedroom")
    half = DepthEstimator(checkpoint=ckpt, device="cuda", fp16=True)
    assert half.amp_dtype == torch.float16
    out = half.predict(rgb, "a bedroom")
    assert out.depth.dtype == np.float32 and out.depth.shape == (120, 160)
    assert np.abs(out.depth - ref.depth).max() < 0.1
    cpu = DepthEstimator(checkpoint=ckpt, device="cpu").predict(rgb, "a bedroom")
    assert np.abs(cpu.depth - ref.depth).max() < 1e-2
    # the GPU's own clock for the same span: within the wall-clock forward, never absent
    assert 0.0 < out.device_ms <= out.forward_ms + 0.5 and cpu.device_ms is None


@cuda
def test_checkpoint_loads_onto_the_gpu_and_text_cache_follows(tmp_path):
    ckpt = save_checkpoint(tmp_path / "m.safetensors", tiny_model())
    model, _ = load_checkpoint(ckpt, device="cuda")
    emb = model.encode_text(["a kitchen"])
    assert emb.device.type == "cuda"
    calls = model.text_encoder.calls
    model.encode_text(["a kitchen"])
    assert model.text_encoder.calls == calls


def _frames(height, width, n=2):
    rng = np.random.default_rng(height * 1000 + width)
    return [(rng.random((height, width, 3)) * 255).astype(np.uint8) for _ in range(n)]


@cuda
@pytest.mark.parametrize("fp16", [False, True])
def test_cuda_graph_replay_gives_the_eager_depth(tmp_path, fp16):
    ckpt = save_checkpoint(tmp_path / "m.safetensors", tiny_model(seed=3))
    eager = DepthEstimator(checkpoint=ckpt, device="cuda", fp16=fp16, cuda_graphs=False)
    graphed = DepthEstimator(checkpoint=ckpt, device="cuda", fp16=fp16)
    assert graphed.uses_cuda_graphs and "CUDA graphs" in graphed.describe()
    tol = dict(rtol=2e-3, atol=2e-3) if fp16 else dict(rtol=1e-5, atol=1e-5)
    for text in ["a bedroom", "a long corridor"]:  # a new text refills the buffer, no re-capture
        for rgb in _frames(120, 160):
            ref, out = eager.predict(rgb, text), graphed.predict(rgb, text)
            np.testing.assert_allclose(out.depth, ref.depth, **tol)
            np.testing.assert_allclose(out.uncertainty, ref.uncertainty, **tol)
            np.testing.assert_allclose(out.depth_range, ref.depth_range, **tol)
    assert graphed.graphs.captures == 1
    assert graphed.uses_cuda_graphs


@cuda
@pytest.mark.parametrize("graphs", [False, True])
def test_fp16_with_weights_cast_once_is_autocast_with_fp32_weights(tmp_path, graphs):
    """The fp16 estimator's Linear/Conv2d weights are fp16 from load; autocast on fp32
    weights (what ran before) must give the same depth, eager and graph-replayed."""
    ckpt = save_checkpoint(tmp_path / "m.safetensors", tiny_model(seed=5))
    half = DepthEstimator(checkpoint=ckpt, device="cuda", fp16=True, cuda_graphs=graphs)
    assert any(m.weight.dtype == torch.float16 for m in half.model.modules() if isinstance(m, torch.nn.Linear))
    before = DepthEstimator(checkpoint=ckpt, device="cuda", cuda_graphs=graphs)
    before.amp_dtype = torch.float16  # fp32 weights under the same autocast
    for rgb in _frames(120, 160):
        got, want = half.predict(rgb, "a bedroom"), before.predict(rgb, "a bedroom")
        np.testing.assert_array_equal(got.depth, want.depth)
        np.testing.assert_array_equal(got.uncertainty, want.uncertainty)


@cuda
def test_cuda_graph_sizes_are_bounded_and_each_size_is_right(tmp_path):
    ckpt = save_checkpoint(tmp_path / "m.safetensors", tiny_model(seed=4))
    eager = DepthEstimator(checkpoint=ckpt, device="cuda", cuda_graphs=False)
    graphed = DepthEstimator(checkpoint=ckpt, device="cuda", graph_sizes=2)
    for height, width in [(64, 96), (96, 64), (70, 100), (64, 96)]:  # 70x100: padded inside the model
        rgb = _frames(height, width, 1)[0]
        out, ref = graphed.predict(rgb, "a kitchen"), eager.predict(rgb, "a kitchen")
        assert out.depth.shape == (height, width)
        np.testing.assert_allclose(out.depth, ref.depth, rtol=1e-5, atol=1e-5)
    assert len(graphed.graphs.programs) == 2 and graphed.graphs.evictions == 2 and graphed.graphs.captures == 4


# A forward hook that reads a value back to the host (a data-dependent sync) cannot be
# captured. Run in a child process so a broken capture cannot disturb the other tests.
FALLBACK_SCRIPT = r'''
import logging, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[2])
from textdepth_ros.serving.inference import DepthEstimator
logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
est = DepthEstimator(checkpoint=sys.argv[1], device="cuda")
est.model.head.register_forward_hook(lambda module, args, out: [float(out[0].max())] and None)  # None: output unchanged
rgb = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
first, second = est.predict(rgb, "a room"), est.predict(rgb, "a room")
ref = DepthEstimator(checkpoint=sys.argv[1], device="cuda", cuda_graphs=False).predict(rgb, "a room")
assert not est.uses_cuda_graphs, est.describe()
assert np.allclose(first.depth, ref.depth, rtol=1e-5, atol=1e-5) and np.array_equal(first.depth, second.depth)
print("FALLBACK_OK", est.describe())
'''


@cuda
def test_a_failed_capture_falls_back_to_eager_with_one_log_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    ckpt = save_checkpoint(tmp_path / "m.safetensors", tiny_model(seed=5))
    repo = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT, str(ckpt), repo], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "FALLBACK_OK" in done.stdout, done.stdout + done.stderr
    warnings = [line for line in done.stderr.splitlines() if "CUDA graph capture failed" in line]
    assert len(warnings) == 1, done.stderr


def _window_attention_on_cuda():
    from textdepth_ros.model.attention_bias import keep_attention_biases
    from textdepth_ros.model.swin import WindowSelfAttention

    torch.manual_seed(0)
    attn = WindowSelfAttention(dim=64, heads=4, window=7).cuda().eval()
    keep_attention_biases(attn, True)
    return attn, attn.relative_position_bias_table, attn.relative_position_index


@cuda
@pytest.mark.parametrize("shifted", [False, True], ids=["plain", "shifted"])
def test_kept_masks_have_aligned_rows_so_sdpa_copies_nothing(shifted):
    """SDPA's memory-efficient kernel pads a mask whose rows are not 8-aligned into a new
    tensor on every call; the kept mask (and the per-forward shifted sum) come aligned."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.profiler import ProfilerActivity, profile

    from textdepth_ros.model.attention_bias import per_forward_mask
    from textdepth_ros.model.windows import shift_mask

    attn, table, index = _window_attention_on_cuda()
    shift = shift_mask(14, 21, 7, 3, torch.device("cuda")) if shifted else None
    q, k, v = torch.randn(3, 6, 4, 49, 16, device="cuda", dtype=torch.float16)
    with torch.inference_mode():
        kept = attn.attention_bias(table, index, shift, torch.float16)
        plain = per_forward_mask(table, index, shift, torch.float16).contiguous()
        assert kept.stride(-1) == 1 and all(s % 8 == 0 for s in kept.stride()[:-1])
        assert torch.equal(kept, plain)
        pads, outs = {}, {}
        for name, mask in (("kept", kept), ("plain", plain)):
            with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION), profile(activities=[ProfilerActivity.CPU]) as prof:
                outs[name] = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            pads[name] = sum(e.name in ("aten::pad", "aten::constant_pad_nd") for e in prof.events())
    assert pads["kept"] == 0 and pads["plain"] >= 1, pads
    torch.testing.assert_close(outs["kept"], outs["plain"], rtol=1e-3, atol=1e-3)


@cuda
def test_a_graph_capture_keeps_nothing_new_and_replays_what_was_kept():
    """Tensors made during a capture live in the graph's pool and hold nothing until a
    replay: a capture must not keep them; one after an eager forward reads the kept bias."""
    from textdepth_ros.model.attention_bias import per_forward_mask

    attn, table, index = _window_attention_on_cuda()
    want = per_forward_mask(table, index, None, torch.float16).detach()
    with torch.inference_mode():
        first = torch.cuda.CUDAGraph()
        with torch.cuda.graph(first):
            out = attn.attention_bias(table, index, None, torch.float16)
        assert attn.attention_bias._entries == {}
        first.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, want)
        kept = attn.attention_bias(table, index, None, torch.float16)  # eager: kept now
        second = torch.cuda.CUDAGraph()
        with torch.cuda.graph(second):
            again = attn.attention_bias(table, index, None, torch.float16)
        assert again is kept and torch.equal(kept, want)
