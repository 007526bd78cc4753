"""`textdepth export --onnx`: the file runs in onnxruntime and gives the eager torch
depth (max relative difference <= 1e-3, fp32), with the text embedding as its second
input and no text-tower weights inside; OnnxDepthEstimator (the node's onnxruntime
backend) gives DepthEstimator's depth."""
import hashlib
import subprocess
import sys

import numpy as np
import onnx
import pytest

from model_helpers import tiny_model
from textdepth_ros.cli import main as cli_main
from textdepth_ros.export import MAX_REL_DIFF, compare_with_torch
from textdepth_ros.inference import DepthEstimator
from textdepth_ros.model.checkpoint import load_checkpoint, save_checkpoint
from textdepth_ros.onnx_runtime import OnnxDepthEstimator, choose_providers

H, W = 64, 96  # not a multiple of 32 in width: the padding is inside the exported graph


def digest(array) -> str:
    array = array.detach().numpy() if hasattr(array, "detach") else array
    return hashlib.sha1(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`textdepth export` as users run it: in a fresh process, where the export is the first
    forward (once, a tracer's stand-in tensor cached there broke the check that follows it)."""
    folder = tmp_path_factory.mktemp("onnx")
    ckpt = save_checkpoint(folder / "m.safetensors", tiny_model(seed=7))
    out = folder / "m.onnx"
    result = subprocess.run([sys.executable, "-m", "textdepth_ros.cli", "export", "--checkpoint", ckpt, "--onnx", out,
                             "--height", str(H), "--width", str(W)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "max relative depth difference" in result.stdout and "(ok," in result.stdout, result.stdout
    return ckpt, out


def test_the_onnx_file_matches_eager_torch(exported):
    ckpt, path = exported
    model, _ = load_checkpoint(ckpt)
    assert compare_with_torch(model, path, H, W) <= MAX_REL_DIFF
    proto = onnx.load(str(path), load_external_data=False)
    assert [i.name for i in proto.graph.input] == ["image", "text_embedding"]
    assert [o.name for o in proto.graph.output] == ["depth", "uncertainty", "depth_range"]
    dims = [d.dim_value for d in proto.graph.input[1].type.tensor_type.shape.dim]
    assert dims == [1, model.text_encoder.width]
    # The CLIP tower stays in torch: none of its weights are in the file (the head's are).
    stored = {digest(onnx.numpy_helper.to_array(i)) for i in proto.graph.initializer}
    assert digest(model.head.logits.weight) in stored
    assert not {digest(p) for p in model.text_encoder.parameters() if p.numel() > 1000} & stored


def test_onnxruntime_backend_gives_the_torch_depth(exported):
    ckpt, path = exported
    rgb = (np.random.default_rng(3).random((H, W, 3)) * 255).astype(np.uint8)
    ort_est = OnnxDepthEstimator(path, checkpoint=ckpt, device="cpu")
    ref = DepthEstimator(checkpoint=ckpt, device="cpu").predict(rgb, "a bathroom")
    out = ort_est.predict(rgb, "a bathroom")
    assert np.max(np.abs(out.depth - ref.depth) / ref.depth) <= MAX_REL_DIFF
    assert np.allclose(out.depth_range, ref.depth_range, rtol=1e-4)
    calls = ort_est.encoder_calls
    ort_est.predict(rgb, "a bathroom")
    assert ort_est.encoder_calls == calls  # cached text: no encoder call
    assert "onnxruntime [CPU]" in ort_est.describe() and not ort_est.untrained
    other = ort_est.predict(np.zeros((48, 80, 3), np.uint8), "a bathroom")  # another size: resized in and out
    assert other.depth.shape == (48, 80) and np.isfinite(other.depth).all()


def test_export_refuses_a_bad_output_name_with_one_line(tmp_path, capsys):
    assert cli_main(["export", "--onnx", str(tmp_path / "m.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--onnx must end in .onnx" in err[0]
    assert not list(tmp_path.iterdir())


def test_backend_refuses_a_file_from_another_config_and_a_foreign_file(exported, tmp_path):
    from textdepth_ros.errors import UserError

    _, path = exported
    baseline = save_checkpoint(tmp_path / "b.safetensors", tiny_model(variant="baseline"))
    with pytest.raises(UserError, match="another model config"):
        OnnxDepthEstimator(path, checkpoint=baseline, device="cpu")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx file")
    with pytest.raises(UserError, match="cannot load ONNX model"):
        OnnxDepthEstimator(junk, device="cpu")


def test_providers_prefer_the_gpu_when_asked_and_present():
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("auto", gpu) == (gpu, None)
    assert choose_providers("cpu", gpu) == (["CPUExecutionProvider"], None)
    providers, warning = choose_providers("cuda", ["CPUExecutionProvider"])
    assert providers == ["CPUExecutionProvider"] and "no CUDA/TensorRT" in warning


@pytest.mark.timeout(240)
def test_depth_node_serves_with_the_onnxruntime_backend(exported):
    """The node over real DDS with `backend: onnxruntime`: the published depth is the
    torch backend's depth of the same frame (same checkpoint)."""
    from ros_helpers import SMALL_PARAMS, connected_client, sample_image, serving_node
    from textdepth_ros.ros.conversions import image_to_numpy

    ckpt, path = exported
    params = dict(SMALL_PARAMS, checkpoint=str(ckpt), backend="onnxruntime", onnx_model=str(path),
                  warmup_height=H, warmup_width=W, default_text="a bathroom")
    rgb = sample_image(H, W, seed=5)
    with serving_node(params) as node, connected_client() as client:
        assert "in onnxruntime [CPU]" in node.log()
        key = client.send_frame(rgb, 2_000_000_000)
        depth = image_to_numpy(client.wait_depth(key)["depth"])
    ref = DepthEstimator(checkpoint=ckpt, device="cpu").predict(rgb, "a bathroom").depth
    assert np.max(np.abs(depth - ref) / ref) <= MAX_REL_DIFF
