"""Checkpoints: safetensors (no code runs on load) with the model config inside, so a
checkpoint alone rebuilds its model. Loading into another architecture says exactly
which weights differ.

Metadata fields: `format`, `config` (the model config), `extra` (free-form JSON: step,
metrics, train config) and, when known, `camera` (the training camera, camera.py:
{fx, fy, width, height}). In code the camera travels as extra["camera"], a Camera;
on disk it is its own field, validated on load like the config."""
import json
from pathlib import Path

import torch

from textdepth_ros.atomic_io import atomic_files
from textdepth_ros.errors import CheckpointError, UserError
from textdepth_ros.camera_scale import Camera, camera_from_record
from textdepth_ros.model.config import config_from_checkpoint, variant_name
from textdepth_ros.model.scene_labels import record_of
from textdepth_ros.model.weights_io import check_tensors
from textdepth_ros.paths import find_model_file

FORMAT = "textdepth_ros/1"
CAMERA = "camera"  # the metadata field, and its key in `extra`


def save_checkpoint(path, model, extra: dict = None) -> Path:
    """Write model weights + config (+ JSON-able `extra`, e.g. epoch, metrics) atomically."""
    return write_checkpoint(path, model.state_dict(), model.config, extra)


def write_checkpoint(path, state: dict, config: dict, extra: dict = None) -> Path:
    """Write a state dict + its model config atomically (atomic_files: a temporary file
    renamed into place, so a crash or a full disk never leaves a truncated checkpoint).
    extra["camera"] (a Camera or its record), if present, becomes the `camera` field."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    extra = dict(extra or {})
    camera = extra.pop(CAMERA, None)
    metadata = {"format": FORMAT, "config": json.dumps(config), "extra": json.dumps(extra)}
    if camera is not None:
        record = camera.to_record() if isinstance(camera, Camera) else camera
        metadata[CAMERA] = json.dumps(camera_from_record(record, "the training camera").to_record())
    with atomic_files(path, what="checkpoint") as (tmp,):
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def set_checkpoint_camera(path, camera, out=None):
    """Rewrite a checkpoint (atomically, in place or to `out`) with `camera` as its training
    camera (None: none). Its tensors and other metadata are kept exactly. Returns the
    camera it recorded before (or None)."""
    from safetensors.torch import save_file

    _, extra = read_checkpoint_config(path)  # a textdepth checkpoint, its config and camera valid
    metadata = dict(_open(path, lambda f: f.metadata()))
    metadata.pop(CAMERA, None)
    if camera is not None:
        metadata[CAMERA] = json.dumps(camera.to_record())
    tensors = _read_tensors(path)
    with atomic_files(Path(out or path), what="checkpoint") as (tmp,):
        save_file(tensors, str(tmp), metadata=metadata)
    return extra.get(CAMERA)


def read_checkpoint(path):
    """(state_dict, config, extra) of a checkpoint file, with clear errors. The config is
    validated before any tensor is read, the tensors are checked (dtype, NaN/inf)."""
    config, extra = read_checkpoint_config(path)
    return read_checkpoint_tensors(path), config, extra


def read_checkpoint_config(path):
    """(config, extra) from a checkpoint's header alone, the config and the camera
    validated (extra["camera"]: a Camera, when the checkpoint records one)."""
    metadata = _open(path, lambda f: f.metadata() or {})
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise CheckpointError(f"{path} is a safetensors file but not a textdepth_ros checkpoint (no model config inside)")
    raw = _parse_json(metadata["config"], f"checkpoint {path}: its model config")
    try:
        config = config_from_checkpoint(raw, f"checkpoint {path}: its model config")
    except UserError as exc:
        raise CheckpointError(str(exc)) from None
    extra = _parse_json(metadata.get("extra", "{}"), f"checkpoint {path}: its 'extra' metadata")
    if not isinstance(extra, dict):
        raise CheckpointError(f"checkpoint {path}: its 'extra' metadata is a {type(extra).__name__}, not a mapping")
    extra.pop(CAMERA, None)  # only the validated field below speaks for the camera
    if CAMERA in metadata:
        where = f"checkpoint {path}: its training camera"
        try:
            extra[CAMERA] = camera_from_record(_parse_json(metadata[CAMERA], where), where)
        except UserError as exc:
            raise CheckpointError(str(exc)) from None
    try:
        record_of(extra, f"checkpoint {path}: its scene text record")  # what text_source auto reads
    except UserError as exc:
        raise CheckpointError(str(exc)) from None
    return config, extra


def read_checkpoint_tensors(path) -> dict:
    """All tensors of a checkpoint, checked: float32/16/bf16 and finite (check_tensors)."""
    state = _read_tensors(path)
    check_tensors(state, f"checkpoint {path}")
    return state


def _read_tensors(path) -> dict:
    return _open(path, lambda f: {k: f.get_tensor(k) for k in f.keys()})


def _open(path, read):
    from safetensors import safe_open

    path = find_model_file(path, "checkpoint", CheckpointError)  # absolute, or a model folder's
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return read(f)
    except Exception as exc:  # noqa: BLE001 - any reader error means a bad file
        hint = " (textdepth checkpoints are .safetensors files)" if path.suffix != ".safetensors" else ""
        raise CheckpointError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}{hint}") from None


def _parse_json(text: str, what: str):
    """JSON from a file someone sent: bad syntax or absurd nesting is one error line."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise CheckpointError(f"{what} is nested too deeply to be a config") from None


def describe_mismatch(expected: dict, found: dict, limit: int = 3) -> str:
    """Human summary of how two state dicts differ ('' when they match): counts per
    top-level module (which tells the variant apart) and a few example keys."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [k for k in expected if k in found and tuple(found[k].shape) != tuple(expected[k].shape)]
    parts = []
    for label, keys in (("missing in checkpoint", missing), ("not in model", unexpected),
                        ("shape differs (checkpoint vs model)", reshaped)):
        if not keys:
            continue
        per_module = {}
        for k in keys:
            per_module[k.split(".")[0]] = per_module.get(k.split(".")[0], 0) + 1
        modules = ", ".join(f"{m} {n}" for m, n in per_module.items())
        examples = [f"{k} {tuple(found[k].shape)} vs {tuple(expected[k].shape)}" if label.startswith("shape") else k
                    for k in keys[:limit]]
        parts.append(f"{len(keys)} {label} ({modules}; e.g. {', '.join(examples)})")
    return "; ".join(parts)


def load_checkpoint(path, model=None, device="cpu"):
    """Load a checkpoint; builds the model from the stored config when `model` is None.
    Returns (model, extra). A model of another architecture gets a CheckpointError."""
    from textdepth_ros.model.network import build_model

    config, extra = read_checkpoint_config(path)
    if model is None:
        model = build_model(config, pretrained=False)
    expected = model.state_dict()
    state = _read_tensors(path)
    problem = describe_mismatch(expected, state)
    if problem:
        raise CheckpointError(
            f"checkpoint {path} ({config.get('name', '?')}, variant {variant_name(config)}) does not fit this model "
            f"({model.config.get('name', '?')}, variant {model.variant}): {problem}"
        )
    check_tensors(state, f"checkpoint {path}", expected)
    model.load_state_dict(state, strict=True)
    return model.to(torch.device(device)), extra
