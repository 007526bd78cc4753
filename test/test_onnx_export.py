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
from textdepth_ros.serving.export import MAX_REL_DIFF, compare_with_torch
from textdepth_ros.serving.inference import DepthEstimator
from textdepth_ros.model.checkpoint import load_checkpoint, save_checkpoint
from textdepth_ros.serving.onnx_runtime import OnnxDepthEstimator, choose_providers

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


@pytest.mark.parametrize("args, message", [
    (["--height", "100000"], "--width x --height is 640x100000 = 64,000,000 pixels, over the limit of 16,777,216"),
    (["--height", "100000", "--width", "100000"], "100000x100000 = 10,000,000,000 pixels"),
    (["--height", "0"], "--width x --height is empty (640x0)"),
    (["--height", "64", "--width", "96", "--opset", "7"], "--opset 7 is not supported: the exporter writes opsets 18-23"),
    (["--height", "64", "--width", "96", "--opset", "99"], "--opset 99 is not supported"),
], ids=["height-100000", "100000-squared", "height-0", "opset-7", "opset-99"])
def test_export_refuses_sizes_and_opsets_before_any_work(tmp_path, capsys, args, message):
    """--height 100000 traced for 600 s up to 3.8 GB; --opset 7 / 99 printed a traceback,
    wrote opset 18 and exited 0. Now one line before the model is even built (the
    untrained-weights warning, printed when it is, never appears)."""
    out = tmp_path / "m.onnx"
    assert cli_main(["export", "--onnx", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not list(tmp_path.iterdir())


def with_metadata(source, target, **changes):
    """A copy of an exported file whose textdepth_* metadata is changed (None: removed)."""
    proto = onnx.load(str(source))
    kept = {p.key: p.value for p in proto.metadata_props}
    for key, value in changes.items():
        kept.pop(f"textdepth_{key}", None)
        if value is not None:
            kept[f"textdepth_{key}"] = value
    del proto.metadata_props[:]
    for key, value in kept.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(target))
    return target


LIES = {
    "config-not-json": ({"config": "{not json"}, "its textdepth_config metadata is not JSON"),
    "config-a-list": ({"config": "[1, 2]"}, "the model config is a list, not a mapping"),
    "height-abc": ({"height": "abc"}, "its textdepth_height metadata is 'abc', not an integer >= 1"),
    "height-missing": ({"height": None}, "its textdepth_height metadata is None"),
    "width-0": ({"width": "0"}, "its textdepth_width metadata is '0', not an integer >= 1"),
    "size-not-the-graphs": ({"height": "48"}, "graph input 'image' has shape [1, 3, 64, 96], but its metadata says "
                                              "[1, 3, 48, 96]"),
    "text-width-not-the-graphs": ({"text_width": "7"}, "graph input 'text_embedding' has shape"),
    "inputs-not-the-graphs": ({"inputs": "image"}, "its graph inputs ['image', 'text_embedding'] are not the ['image']"),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_backend_refuses_lying_metadata_with_one_line(exported, tmp_path, lie):
    from textdepth_ros.errors import UserError

    ckpt, path = exported
    changes, message = LIES[lie]
    bad = with_metadata(path, tmp_path / "lying.onnx", **changes)
    with pytest.raises(UserError) as info:
        OnnxDepthEstimator(bad, checkpoint=ckpt, device="cpu")
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.timeout(240)
def test_depth_node_with_a_lying_onnx_file_exits_with_one_line(exported, tmp_path):
    from ros_helpers import SMALL_PARAMS, NodeProcess

    ckpt, path = exported
    bad = with_metadata(path, tmp_path / "lying.onnx", height="abc")
    node = NodeProcess(dict(SMALL_PARAMS, checkpoint=str(ckpt), backend="onnxruntime", onnx_model=str(bad)))
    try:
        code = node.proc.wait(180)
    finally:
        node.cleanup()
    errors = [line for line in node.log().splitlines() if "textdepth_height" in line]
    assert code != 0 and "Traceback" not in node.log(), node.log()
    assert len(errors) == 1 and "[FATAL]" in errors[0] and "cannot start" in errors[0], node.log()


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
        depth = image_to_numpy(client.wait_depth(key)["depth/image"])
    ref = DepthEstimator(checkpoint=ckpt, device="cpu").predict(rgb, "a bathroom").depth
    assert np.max(np.abs(depth - ref) / ref) <= MAX_REL_DIFF
