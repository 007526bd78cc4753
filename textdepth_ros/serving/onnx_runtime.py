"""The network in onnxruntime, the text tower in torch: the node's `backend: onnxruntime`.

Same `predict(rgb, text)` as DepthEstimator. The .onnx file comes from
`textdepth export` and is built for one input size: images of another size are resized
to it and the outputs resized back (one log line). Execution providers: TensorRT, then
CUDA, where this onnxruntime build has them and the device asks for a GPU; CPU
otherwise. The text embedding comes from the checkpoint's (or config's) CLIP text tower
with its cache, so a repeated text costs nothing.
"""
import json
import logging
import time
from types import SimpleNamespace

import cv2
import numpy as np

from textdepth_ros.errors import UserError
from textdepth_ros.serving.inference import Prediction, ServingModel, build_untrained, check_rgb
from textdepth_ros.paths import find_model_file

log = logging.getLogger("textdepth_ros.serving.onnx_runtime")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
OUTPUTS = ("depth", "uncertainty", "depth_range")  # what `textdepth export` writes


def choose_providers(device: str, available) -> tuple:
    """(providers in preference order, warning or None) for a device spec."""
    device = (device or "auto").strip().lower()
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if device == "cpu":
        return ["CPUExecutionProvider"], None
    if device.startswith("cuda") and not gpu:
        return ["CPUExecutionProvider"], (f"device '{device}' asked for but this onnxruntime has no CUDA/TensorRT "
                                          "execution provider: running on CPU")
    return gpu + ["CPUExecutionProvider"], None


def read_metadata(session, path) -> dict:
    """What `textdepth export` stored in the file, each field checked, and checked against
    the graph's own inputs: any lie is one UserError line naming the field."""
    from textdepth_ros.model.config import config_from_checkpoint

    meta, where = session.get_modelmeta().custom_metadata_map, f"ONNX model '{path}'"
    if "textdepth_config" not in meta:
        raise UserError(f"{where} was not written by `textdepth export` (no textdepth metadata)")
    try:
        config = json.loads(meta["textdepth_config"])
    except (ValueError, RecursionError):
        raise UserError(f"{where}: its textdepth_config metadata is not JSON") from None
    config_from_checkpoint(config, f"{where}: its textdepth_config metadata")  # validated; compared as stored
    sizes = {}
    for key, low in (("height", 1), ("width", 1), ("text_width", 0)):
        value = meta.get(f"textdepth_{key}")
        if value is None or not value.strip().isdigit() or int(value) < low:
            raise UserError(f"{where}: its textdepth_{key} metadata is {value!r}, not an integer >= {low}")
        sizes[key] = int(value)
    inputs = meta.get("textdepth_inputs", "image").split(",")
    expected = {"image": [1, 3, sizes["height"], sizes["width"]], "text_embedding": [1, sizes["text_width"]]}
    graph = {i.name: i.shape for i in session.get_inputs()}
    if inputs not in (["image"], ["image", "text_embedding"]) or sorted(graph) != sorted(inputs):
        raise UserError(f"{where}: its graph inputs {sorted(graph)} are not the {inputs} its metadata names")
    for name in inputs:
        if list(graph[name]) != expected[name]:
            raise UserError(f"{where}: its graph input '{name}' has shape {graph[name]}, but its metadata says "
                            f"{expected[name]}")
    missing = [o for o in OUTPUTS if o not in {o.name for o in session.get_outputs()}]
    if missing:
        raise UserError(f"{where}: its graph has no output {', '.join(missing)}")
    return {"config": config, "height": sizes["height"], "width": sizes["width"], "inputs": inputs}


class OnnxDepthEstimator(ServingModel):
    """DepthEstimator's interface over an onnxruntime session."""

    def __init__(self, onnx_path, config="tiny", checkpoint=None, device="auto", seed=0):
        import onnxruntime as ort

        from textdepth_ros.model.checkpoint import load_checkpoint

        onnx_path = find_model_file(onnx_path, "ONNX model", UserError)  # absolute, or a model folder's
        try:
            providers, self.device_warning = choose_providers(device, ort.get_available_providers())
            self.session = ort.InferenceSession(str(onnx_path), providers=providers)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a missing or corrupt file fails in many ways
            raise UserError(f"cannot load ONNX model '{onnx_path}': {str(exc).splitlines()[0][:200]}") from None
        if self.device_warning:
            log.warning(self.device_warning)
        meta = read_metadata(self.session, onnx_path)
        self.size = (meta["height"], meta["width"])
        if checkpoint:
            model, extra = load_checkpoint(checkpoint)
            self.untrained = False
            self.training_camera = extra.get("camera")
        else:
            model = build_untrained(config, seed, pretrained=False)  # the network's weights stay unused here:
            model.load_pretrained(parts=("text_encoder",))  # only CLIP's are needed
            self.untrained = True
        exported = {k: v for k, v in meta["config"].items() if k != "name"}
        if exported != {k: v for k, v in model.config.items() if k != "name"}:
            raise UserError(f"'{onnx_path}' was exported from another model config than "
                            f"{'the checkpoint' if checkpoint else config}'s: export it again from the same one")
        # Only the text tower is kept: the network itself runs in onnxruntime.
        self.model = SimpleNamespace(text_encoder=model.text_encoder, config=model.config, variant=model.variant,
                                     uses_text=model.uses_text)
        # The encoder itself, not model.encode_text: a bound method would keep the whole
        # network alive beside the onnxruntime session.
        self.model.encode_text = model.text_encoder if model.uses_text else None
        del model
        self._adopt_config(self.model.config)
        self.providers = self.session.get_providers()
        self.device = "cuda" if self.providers[0] in GPU_PROVIDERS else "cpu"
        self.compiled = False
        self.uses_cuda_graphs = False
        self._resized_warned = False

    def describe(self) -> str:
        weights = "UNTRAINED (random) weights" if self.untrained else "trained checkpoint"
        return (f"{self.config.get('name', '?')} ({self.model.variant}) in onnxruntime "
                f"[{', '.join(p.replace('ExecutionProvider', '') for p in self.providers)}] "
                f"{self.size[0]}x{self.size[1]}, {weights}")

    def predict(self, rgb: np.ndarray, text: str = "") -> Prediction:
        start = time.perf_counter()
        check_rgb(rgb)
        height, width = rgb.shape[:2]
        resized = (height, width) != self.size
        if resized:
            if not self._resized_warned:
                self._resized_warned = True
                log.warning("images are %dx%d, the ONNX model is built for %dx%d: resizing in and out "
                            "(export at the camera's size to avoid it)", height, width, *self.size)
            rgb = cv2.resize(rgb, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        feeds = {"image": np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)}
        if self.uses_text:
            feeds["text_embedding"] = self.model.encode_text([text]).cpu().numpy()
        depth, uncertainty, depth_range = self.session.run(["depth", "uncertainty", "depth_range"], feeds)
        depth, uncertainty = depth[0, 0], uncertainty[0, 0]
        if resized:
            depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_LINEAR)
            uncertainty = cv2.resize(uncertainty, (width, height), interpolation=cv2.INTER_LINEAR)
        d_min, d_max = (float(v) for v in depth_range[0])
        return Prediction(depth, uncertainty, (d_min, d_max), (time.perf_counter() - start) * 1000.0)
