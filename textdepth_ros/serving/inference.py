"""Frame in -> depth out. The one place that turns numpy images into tensors and back,
picks the device and precision, and knows whether the weights are trained.

Used by `textdepth predict`, the ROS node, bag evaluation and the benchmarks.
"""
import copy
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from textdepth_ros.serving.cuda_graphs import GraphCache
from textdepth_ros.devices import resolve_device
from textdepth_ros.errors import UserError
from textdepth_ros.model import build_model
from textdepth_ros.model.attention_bias import keep_attention_biases
from textdepth_ros.model.checkpoint import load_checkpoint

log = logging.getLogger("textdepth_ros.serving.inference")
DEFAULT_COMPILE_CACHE = Path("~/.cache/textdepth_ros/torch_compile")


def autocast_dtype(device: torch.device, fp16: bool):
    """fp16 autocast on CUDA; on CPU the half type autocast supports is bfloat16."""
    if not fp16:
        return None
    return torch.float16 if device.type == "cuda" else torch.bfloat16


# The autocast ops that take weights in half precision. Their weights cast once here
# instead of by autocast in every forward: the same rounding, so the same depth, but
# ~290 fewer cast kernels per paper-config forward (and a CUDA graph replays every
# kernel it captured, casts included).
HALF_WEIGHT_MODULES = (torch.nn.Linear, torch.nn.Conv2d)


def cast_matmul_weights(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Casts the weights and biases of every Linear/Conv2d outside the text tower to
    `dtype` (norms, tables and the text tower, which runs without autocast, stay as
    they are). For a model served under autocast to `dtype` only."""
    text_tower = getattr(model, "text_encoder", None)
    skip = {id(m) for m in text_tower.modules()} if text_tower is not None else set()
    for module in model.modules():
        if isinstance(module, HALF_WEIGHT_MODULES) and id(module) not in skip:
            module.to(dtype)


def build_untrained(config, seed: int = 0, **kwargs) -> torch.nn.Module:
    """build_model with its random initialisation drawn from `seed` (the process's own
    random state untouched): two launches of an untrained node give the same depth."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build_model(config, **kwargs)


def own_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` to change without touching the original; the text tower (and its
    cache) stays shared: nothing here changes it."""
    text_tower = getattr(model, "text_encoder", None)
    return copy.deepcopy(model, memo={id(text_tower): text_tower} if text_tower is not None else None)


def pack_outputs(out: dict) -> torch.Tensor:
    """The network's outputs for one image as one flat float32 tensor [depth | uncertainty
    | d_min, d_max]: a single device-to-host copy brings everything back."""
    return torch.cat([out["depth"][0, 0].reshape(-1).float(), out["uncertainty"][0, 0].reshape(-1).float(),
                      out["depth_range"][0].reshape(-1).float()])


def compile_cache_dir(path: str = "") -> str:
    """Where torch.compile keeps its on-disk caches (Inductor's FX graph / AOT caches and
    the Triton kernels under it), so a restart reuses the first start's compilation:
    `path`, else $TORCHINDUCTOR_CACHE_DIR, else ~/.cache/textdepth_ros/torch_compile."""
    chosen = path or os.environ.get("TORCHINDUCTOR_CACHE_DIR") or str(DEFAULT_COMPILE_CACHE)
    chosen = os.path.abspath(os.path.expanduser(chosen))
    os.makedirs(chosen, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = chosen  # Inductor reads it when it compiles
    return chosen


def check_rgb(rgb: np.ndarray) -> None:
    """What every estimator's predict takes: HxWx3 uint8 RGB."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise UserError(f"expected an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")


@dataclass
class Prediction:
    depth: np.ndarray  # float32 [H, W], metres along the optical axis
    uncertainty: np.ndarray  # float32 [H, W], std of the bin distribution (metres)
    depth_range: tuple  # (d_min, d_max) of this frame's bins
    forward_ms: float  # model time incl. transfers (wall clock, in the calling thread)
    # CUDA only: the same span on the GPU's clock (events around upload..copy back). Beside
    # forward_ms it tells a slow GPU from a thread that waited for the GIL or the host.
    device_ms: Optional[float] = None
    scale: float = 1.0  # the focal-scaling factor depth, uncertainty and range were multiplied by (camera_scale.py)


class ServingModel:
    """What every estimator (torch, onnxruntime) shares: a `model` with the text tower
    and config, the depth limits, text-encoder counters, a warm-up."""

    training_camera = None  # camera_scale.py Camera the checkpoint records, or None

    def _adopt_config(self, config: dict) -> None:
        self.config = config
        bins = config["bins"]
        self.depth_limits = (float(bins["dataset_min"]), float(bins["dataset_max"]))

    @property
    def uses_text(self) -> bool:
        return self.model.uses_text

    @property
    def encoder_calls(self) -> int:
        return self.model.text_encoder.calls if self.model.text_encoder is not None else 0

    def warmup(self, height: int = 480, width: int = 640, text: str = "a room") -> float:
        """One forward pass (allocations, cuDNN autotune, torch.compile, CUDA graph capture
        of this size); returns its milliseconds."""
        return self.predict(np.zeros((height, width, 3), np.uint8), text).forward_ms


class DepthEstimator(ServingModel):
    """Holds a model on a device. `predict(rgb, text)` on HxWx3 uint8 RGB.

    On CUDA the image goes up as bytes (one HxWx3 uint8 copy through pinned memory),
    is converted on the GPU, and all outputs come back in one copy into pinned memory.
    With `cuda_graphs` (default) each input size is captured into a CUDA graph on first
    use (warm up at the camera's size) and replayed afterwards; see cuda_graphs.py. On
    CPU `cuda_graphs` does nothing and `describe()` says so. One thread at a time."""

    def __init__(self, config="tiny", checkpoint=None, device="auto", fp16=False, variant=None, compile=False,
                 cuda_graphs=True, graph_sizes=4, compile_cache="", model=None, half_dtype=None, seed=0):
        """`model`: an already built network to serve instead of loading one (the
        benchmarks share one model between several estimators; a half-precision
        estimator serves its own copy of it). `half_dtype`: with fp16, the autocast type
        instead of the device's default (bf16 on CUDA, for the benchmarks). `seed`: the
        untrained weights' (no checkpoint): one seed, one network, in any process."""
        self.device, self.device_warning = resolve_device(device)
        if self.device_warning:
            log.warning(self.device_warning)
        if model is not None:
            self.model, self.checkpoint_info, self.untrained = model, {}, checkpoint is None
        elif checkpoint:
            self.model, self.checkpoint_info = load_checkpoint(checkpoint)
            self.untrained = False
            self.training_camera = self.checkpoint_info.get("camera")
        else:
            self.model = build_untrained(config, seed, variant=variant, pretrained=True)
            self.checkpoint_info = {}
            self.untrained = True
        self.model.eval().to(self.device)
        self.amp_dtype = (half_dtype or autocast_dtype(self.device, fp16)) if fp16 else None
        if self.amp_dtype is not None:
            if model is not None:
                self.model = own_copy(self.model)
            cast_matmul_weights(self.model, self.amp_dtype)
        # Served weights never change: each window attention keeps its bias, cast and laid
        # out for the fused kernel, instead of rebuilding it per frame (model/attention_bias.py).
        keep_attention_biases(self.model, True)
        # torch.compile fuses the many small kernels of Swin and the decoder (the first
        # frame of each new input size pays the compilation, so warm up at the camera's
        # size; dynamic=False keeps one static, graph-capturable specialization per size).
        # The text encoder stays outside: its cache is Python and runs once per new text.
        self.compiled = bool(compile)
        self.compile_cache = compile_cache_dir(compile_cache) if compile else None
        self._network = torch.compile(self.model, dynamic=False) if compile else self.model
        self.graphs = None
        self.graph_note = ""
        self._events = None  # CUDA timing events, made on first use
        if cuda_graphs and self.device.type == "cuda":
            self.graphs = GraphCache(self._program, self.device, max_sizes=graph_sizes)
        elif cuda_graphs:
            self.graph_note = f"CUDA graphs: no-op on {self.device.type}"
        self._adopt_config(self.model.config)

    @property
    def uses_cuda_graphs(self) -> bool:
        """True while frames replay captured CUDA graphs (False on CPU or after a failed capture)."""
        return self.graphs is not None and self.graphs.enabled

    def describe(self) -> str:
        precision = {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.amp_dtype]
        weights = "UNTRAINED (random) weights" if self.untrained else "trained checkpoint"
        extras = ", torch.compile" if self.compiled else ""
        if self.graphs is not None:
            extras += ", CUDA graphs" if self.graphs.enabled else f", CUDA graphs off ({self.graphs.disabled_reason})"
        elif self.graph_note:
            extras += f", {self.graph_note}"
        return f"{self.config.get('name', '?')} ({self.model.variant}) on {self.device} {precision}{extras}, {weights}"

    def _program(self, image_u8: torch.Tensor, text_embedding) -> torch.Tensor:
        """The per-frame device work: HxWx3 uint8 -> network -> flat outputs. What a CUDA
        graph captures, and what the eager path runs."""
        images = image_u8.permute(2, 0, 1)[None].float().div_(255.0)
        # cache_enabled=False: autocast's weight-cast cache is per context anyway, and a
        # cached cast made during a capture would outlive the context in the graph's pool.
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None, cache_enabled=False):
            out = self._network(images, text_embedding=text_embedding)
        return pack_outputs(out)

    @torch.inference_mode()
    def predict(self, rgb: np.ndarray, text: str = "") -> Prediction:
        start = time.perf_counter()
        cuda = self.device.type == "cuda"
        if cuda:
            stream = torch.cuda.current_stream(self.device)  # the model's GPU, not the current one
            begin, end = self._timing_events()
            begin.record(stream)
        flat = self.device_forward(rgb, text)
        height, width = rgb.shape[:2]
        device_ms = None
        if cuda:  # one copy into pinned memory, one wait
            out = torch.empty(flat.shape, dtype=torch.float32, pin_memory=True)
            out.copy_(flat, non_blocking=True)
            end.record(stream)
            stream.synchronize()
            device_ms = begin.elapsed_time(end)
        else:
            out = flat
        values = out.numpy()  # keeps `out` alive as long as the arrays live
        n = height * width
        depth, uncertainty = values[:n].reshape(height, width), values[n:2 * n].reshape(height, width)
        d_min, d_max = (float(v) for v in values[2 * n:2 * n + 2])
        return Prediction(depth, uncertainty, (d_min, d_max), (time.perf_counter() - start) * 1000.0, device_ms)

    def _timing_events(self):
        """One pair of timing events, reused (predict runs on one thread at a time)."""
        if self._events is None:
            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        return self._events

    @torch.inference_mode()
    def device_forward(self, rgb: np.ndarray, text: str = "") -> torch.Tensor:
        """The forward without the copy back: the flat outputs (see pack_outputs) on the
        device, possibly still being computed. Valid until the next call (a CUDA graph
        reuses its output buffer)."""
        check_rgb(rgb)
        host = torch.from_numpy(np.ascontiguousarray(rgb))
        flat = None
        if self.uses_cuda_graphs:
            if self.uses_text:  # re-encoded (cache permitting) and copied only when the text changes
                self.graphs.set_text(text, lambda: self.model.encode_text([text]))
            flat = self.graphs.run(host)
        if flat is None:  # eager: CPU, graphs off, or the capture just failed
            embedding = self.model.encode_text([text]) if self.uses_text else None
            image = host.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else host
            flat = self._program(image, embedding)
        return flat
