"""Half precision with the matmul weights cast once (inference.cast_matmul_weights) gives
exactly what autocast gave with fp32 weights, with fewer ops per forward, and the node
serves it from a params file. On CPU autocast's half type is bfloat16; CUDA's fp16 takes
the same code path (test_cuda.py runs it)."""
import os

import numpy as np
import pytest
import torch
from rclpy.qos import QoSProfile, ReliabilityPolicy

from textdepth_ros.devices import torch_threads
from textdepth_ros.serving.inference import HALF_WEIGHT_MODULES, DepthEstimator
from textdepth_ros.model.checkpoint import save_checkpoint
from textdepth_ros.ros.conversions import image_to_numpy

from model_helpers import CountOps, tiny_model
from ros_helpers import NodeProcess, Stamps, camera_info, connected_client, sample_image

TEXT = "a kitchen with a table"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("half") / "m.safetensors", tiny_model(seed=3))


def rgb(height=96, width=128, seed=0):
    return (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)


def forward_counted(estimator, image):
    counter = CountOps()
    with counter:
        prediction = estimator.predict(image, TEXT)
    return prediction, counter


def test_cast_weights_give_the_same_depth_as_autocast_with_fp32_weights(checkpoint):
    half = DepthEstimator(checkpoint=checkpoint, device="cpu", fp16=True)
    before = DepthEstimator(checkpoint=checkpoint, device="cpu")  # fp32 weights ...
    before.amp_dtype = torch.bfloat16  # ... under the same autocast: what fp16=True ran until now
    for seed in (0, 1):
        image = rgb(seed=seed)
        got, new_ops = forward_counted(half, image)
        want, old_ops = forward_counted(before, image)
        assert np.array_equal(got.depth, want.depth) and np.array_equal(got.uncertainty, want.uncertainty)
        assert got.depth_range == want.depth_range
    cast = sum(1 for m in half.model.modules()
               if isinstance(m, HALF_WEIGHT_MODULES) and m.weight.dtype == torch.bfloat16)
    assert cast > 20
    # each cast module's weight (and bias) was cast by autocast in every forward before
    assert old_ops.casts - new_ops.casts >= cast
    assert sum(new_ops.ops.values()) < sum(old_ops.ops.values())


def test_the_text_tower_and_norms_stay_fp32(checkpoint):
    half = DepthEstimator(checkpoint=checkpoint, device="cpu", fp16=True)
    tower = half.model.text_encoder
    assert {p.dtype for p in tower.parameters()} == {torch.float32}
    norms = [m for m in half.model.modules() if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm,
                                                               torch.nn.BatchNorm2d))]
    assert norms and {p.dtype for m in norms for p in m.parameters()} == {torch.float32}
    assert half.model.encode_text([TEXT]).dtype == torch.float32


def test_a_shared_model_is_copied_not_changed(checkpoint):
    """The benchmarks serve one model at several precisions: a half estimator casts its
    own copy, and shares the (unchanged) text tower and its cache."""
    shared = DepthEstimator(checkpoint=checkpoint, device="cpu").model
    half = DepthEstimator(model=shared, device="cpu", fp16=True)
    assert half.model is not shared and half.model.text_encoder is shared.text_encoder
    assert {p.dtype for p in shared.parameters()} == {torch.float32}
    fp32 = DepthEstimator(model=shared, device="cpu")
    assert fp32.model is shared  # nothing to change: no copy
    image = rgb()
    reference = DepthEstimator(checkpoint=checkpoint, device="cpu").predict(image, TEXT)
    assert np.array_equal(fp32.predict(image, TEXT).depth, reference.depth)
    assert np.abs(half.predict(image, TEXT).depth - reference.depth).max() < 0.5


def test_the_node_serves_fp16_from_a_params_file_at_camera_size(checkpoint, tmp_path):
    """As a user runs it: `fp16: true` with other non-default values in a params file, the
    node under a namespace, a 640x480 frame from this (another) process with default DDS
    settings, published reliable as drivers do. The node's depth is the half estimator's."""
    height, width, text = 480, 640, "a narrow hallway with doors"
    params_file = tmp_path / "depth.yaml"
    params_file.write_text(f"""/**/depth_node:
  ros__parameters:
    checkpoint: "{checkpoint}"
    fp16: true
    default_text: "{text}"
    warmup_height: {height}
    warmup_width: {width}
    publish_cloud: false
    diagnostics_period: 0.2
""")
    node = NodeProcess(params_file=params_file, namespace="/robot2")
    try:
        node.wait_ready()
        assert "on cpu bf16" in node.log(), node.log()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        with connected_client(namespace="robot2", image_qos=reliable) as client:
            client.wait_reliable_image_subscription()
            image = sample_image(height, width)
            key = client.send_frame(image, Stamps.take(), info=camera_info(height, width))
            depth = image_to_numpy(client.wait_depth(key, timeout=120)["depth/image"])
        assert node.interrupt() == 0 and "Traceback" not in node.log(), node.log()
    finally:
        node.cleanup()
    # the node's torch thread count (OMP_NUM_THREADS, conftest): a bf16 forward's sums depend on it
    with torch_threads(int(os.environ["OMP_NUM_THREADS"])):
        expected = DepthEstimator(checkpoint=checkpoint, device="cpu", fp16=True).predict(image, text).depth
    assert depth.shape == (height, width)
    np.testing.assert_allclose(depth, expected, rtol=1e-5)
