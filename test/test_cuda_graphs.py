"""The CUDA-graph path's bookkeeping, on CPU: static buffers updated in place, the text
buffer refreshed without re-capture, the LRU bound on captured sizes, and the eager
fallback after a failed capture.

On CPU there is no graph to capture, so `capture` here is `eager_replay`: "replaying"
reruns the program against the same static buffers. That still checks what matters
for a real graph, which reads exactly those buffers again at every replay: a program
that kept a frame's own tensors instead would return the first frame forever and these
tests would fail. The real capture (torch.cuda.graph) is tested in test_cuda.py.
"""
import logging

import numpy as np
import pytest
import torch

from textdepth_ros.serving.cuda_graphs import GraphCache
from textdepth_ros.serving.inference import DepthEstimator


def eager_replay(program):
    return program


@pytest.fixture(scope="module")
def estimator():
    torch.manual_seed(0)
    return DepthEstimator("tiny", device="cpu", cuda_graphs=False)


def frame(height, width, seed):
    return (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)


def run_cache(cache, estimator, rgb, text):
    with torch.inference_mode():
        cache.set_text(text, lambda: estimator.model.encode_text([text]))
        flat = cache.run(torch.from_numpy(rgb))
    n = rgb.shape[0] * rgb.shape[1]
    return flat[:n].reshape(rgb.shape[:2]).numpy().copy()


def test_replays_read_the_static_image_and_text_buffers(estimator):
    cache = GraphCache(estimator._program, torch.device("cpu"), capture=eager_replay)
    a, b = frame(64, 96, 1), frame(64, 96, 2)
    calls = estimator.encoder_calls
    for rgb, text in [(a, "a kitchen"), (b, "a kitchen"), (b, "a long corridor"), (a, "a long corridor")]:
        assert np.array_equal(run_cache(cache, estimator, rgb, text), estimator.predict(rgb, text).depth)
    assert cache.captures == 1  # one size: one capture, texts and images only refill buffers
    assert estimator.encoder_calls - calls == 2  # one encoder call per new text


def test_text_buffer_is_refilled_only_when_the_text_changes(estimator):
    cache = GraphCache(estimator._program, torch.device("cpu"), capture=eager_replay)
    encoded = []

    def encode(text):
        encoded.append(text)
        return estimator.model.encode_text([text])

    with torch.inference_mode():
        for text in ["a", "a", "b", "b", "a"]:
            cache.set_text(text, lambda: encode(text))
    assert encoded == ["a", "b", "a"]


def test_captured_sizes_are_bounded_least_recently_used_first(estimator):
    cache = GraphCache(estimator._program, torch.device("cpu"), max_sizes=2, capture=eager_replay)
    sizes = [(32, 32), (64, 32), (32, 32), (32, 64), (64, 32)]
    for i, (h, w) in enumerate(sizes):
        rgb = frame(h, w, i)
        assert np.array_equal(run_cache(cache, estimator, rgb, "a room"), estimator.predict(rgb, "a room").depth)
    # (64,32) was least recently used when (32,64) arrived, so it was evicted and captured again.
    assert list(cache.programs) == [(32, 64), (64, 32)]
    assert cache.captures == 4 and cache.evictions == 2


def test_a_failed_capture_falls_back_to_eager_with_one_log_line(estimator, caplog):
    attempts = []

    def failing_capture(program):
        attempts.append(1)
        raise RuntimeError("operation not permitted when stream is capturing")

    cache = GraphCache(estimator._program, torch.device("cpu"), capture=failing_capture)
    with caplog.at_level(logging.WARNING, logger="textdepth_ros.serving.cuda_graphs"):
        for i in range(3):
            with torch.inference_mode():
                cache.set_text("a room", lambda: estimator.model.encode_text(["a room"]))
                assert cache.run(torch.from_numpy(frame(32, 32, i))) is None
    assert len(attempts) == 1 and not cache.enabled
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "capture failed at 32x32" in lines[0] and "eager" in lines[0]


def test_on_cpu_the_option_is_a_no_op_and_says_so(estimator):
    est = DepthEstimator(model=estimator.model, device="cpu", cuda_graphs=True)
    assert est.graphs is None and not est.uses_cuda_graphs
    assert "CUDA graphs: no-op on cpu" in est.describe()
    assert "CUDA graphs" not in DepthEstimator(model=estimator.model, device="cpu", cuda_graphs=False).describe()


def test_max_sizes_must_be_positive(estimator):
    with pytest.raises(ValueError):
        GraphCache(estimator._program, torch.device("cpu"), max_sizes=0)
