"""CUDA paths (device selection, pinned memory, fp16 autocast, checkpoint to GPU).
Skipped without a GPU; run on a CUDA machine by bench/gpu.sh. The CPU twins of these
paths (bf16 autocast, CPU fallback) are tested everywhere."""
import numpy as np
import pytest
import torch

from model_helpers import tiny_model
from textdepth_ros.inference import DepthEstimator, resolve_device
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


@cuda
def test_checkpoint_loads_onto_the_gpu_and_text_cache_follows(tmp_path):
    ckpt = save_checkpoint(tmp_path / "m.safetensors", tiny_model())
    model, _ = load_checkpoint(ckpt, device="cuda")
    emb = model.encode_text(["a kitchen"])
    assert emb.device.type == "cuda"
    calls = model.text_encoder.calls
    model.encode_text(["a kitchen"])
    assert model.text_encoder.calls == calls
