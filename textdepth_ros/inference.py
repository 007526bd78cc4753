"""Frame in -> depth out. The one place that turns numpy images into tensors and back,
picks the device and precision, and knows whether the weights are trained.

Used by `textdepth predict`, the ROS node, bag evaluation and the benchmarks.
"""
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from textdepth_ros.errors import UserError
from textdepth_ros.model import build_model
from textdepth_ros.model.checkpoint import load_checkpoint

log = logging.getLogger("textdepth_ros.inference")


def resolve_device(spec: str = "auto"):
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> (torch.device, warning or None).
    CUDA asked for but absent falls back to CPU with one warning."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu"), None
    if spec == "cpu":
        return torch.device("cpu"), None
    if spec == "cuda" or spec.startswith("cuda:"):
        try:
            device = torch.device(spec)
        except RuntimeError:
            raise UserError(f"bad device '{spec}' (auto, cpu, cuda or cuda:N)") from None
        if not torch.cuda.is_available():
            return torch.device("cpu"), f"device '{spec}' asked for but CUDA is not available: running on CPU"
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device '{spec}' does not exist ({torch.cuda.device_count()} CUDA devices)")
        return device, None
    raise UserError(f"bad device '{spec}' (auto, cpu, cuda or cuda:N)")


def autocast_dtype(device: torch.device, fp16: bool):
    """fp16 autocast on CUDA; on CPU the half type autocast supports is bfloat16."""
    if not fp16:
        return None
    return torch.float16 if device.type == "cuda" else torch.bfloat16


@dataclass
class Prediction:
    depth: np.ndarray  # float32 [H, W], metres along the optical axis
    uncertainty: np.ndarray  # float32 [H, W], std of the bin distribution (metres)
    depth_range: tuple  # (d_min, d_max) of this frame's bins
    forward_ms: float  # model time incl. transfers


class DepthEstimator:
    """Holds a model on a device. `predict(rgb, text)` on HxWx3 uint8 RGB."""

    def __init__(self, config="tiny", checkpoint=None, device="auto", fp16=False, variant=None, compile=False):
        self.device, self.device_warning = resolve_device(device)
        if self.device_warning:
            log.warning(self.device_warning)
        if checkpoint:
            self.model, self.checkpoint_info = load_checkpoint(checkpoint)
            self.untrained = False
        else:
            self.model = build_model(config, variant=variant, pretrained=True)
            self.checkpoint_info = {}
            self.untrained = True
        self.model.eval().to(self.device)
        self.amp_dtype = autocast_dtype(self.device, fp16)
        # torch.compile fuses the many small kernels of Swin and the decoder: on a GPU it
        # removes most of the Python launch overhead (the first frame of each new input
        # size pays the compilation, so warm up at the camera's size). The text encoder
        # stays outside: its cache is Python and runs once per new text.
        self.compiled = bool(compile)
        self._network = torch.compile(self.model) if compile else self.model
        self.config = self.model.config
        bins = self.config["bins"]
        self.depth_limits = (float(bins["dataset_min"]), float(bins["dataset_max"]))

    @property
    def uses_text(self) -> bool:
        return self.model.uses_text

    @property
    def encoder_calls(self) -> int:
        return self.model.text_encoder.calls if self.model.text_encoder is not None else 0

    def describe(self) -> str:
        precision = {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.amp_dtype]
        weights = "UNTRAINED (random) weights" if self.untrained else "trained checkpoint"
        compiled = ", torch.compile" if self.compiled else ""
        return f"{self.config.get('name', '?')} ({self.model.variant}) on {self.device} {precision}{compiled}, {weights}"

    def _to_tensor(self, rgb: np.ndarray) -> torch.Tensor:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise UserError(f"expected an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(rgb))
        if self.device.type == "cuda":
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.permute(2, 0, 1)[None].float().div_(255.0)

    @torch.inference_mode()
    def predict(self, rgb: np.ndarray, text: str = "") -> Prediction:
        start = time.perf_counter()
        images = self._to_tensor(rgb)
        embedding = self.model.encode_text([text]) if self.uses_text else None
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            out = self._network(images, text_embedding=embedding)
        depth = out["depth"][0, 0].float().cpu().numpy()
        uncertainty = out["uncertainty"][0, 0].float().cpu().numpy()
        d_min, d_max = out["depth_range"][0].float().cpu().tolist()
        return Prediction(depth, uncertainty, (d_min, d_max), (time.perf_counter() - start) * 1000.0)

    def warmup(self, height: int = 480, width: int = 640, text: str = "a room") -> float:
        """One forward pass (allocations, cuDNN autotune); returns its milliseconds."""
        return self.predict(np.zeros((height, width, 3), np.uint8), text).forward_ms
