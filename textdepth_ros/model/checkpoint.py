"""Checkpoints: safetensors (no code runs on load) with the model config inside, so a
checkpoint alone rebuilds its model. Loading into another architecture says exactly
which weights differ."""
import json
import os
from pathlib import Path

import torch

from textdepth_ros.errors import CheckpointError
from textdepth_ros.model.config import load_model_config, variant_name

FORMAT = "textdepth_ros/1"


def save_checkpoint(path, model, extra: dict = None) -> Path:
    """Write model weights + config (+ JSON-able `extra`, e.g. epoch, metrics) atomically."""
    return write_checkpoint(path, model.state_dict(), model.config, extra)


def write_checkpoint(path, state: dict, config: dict, extra: dict = None) -> Path:
    """Write a state dict + its model config atomically: a temporary file renamed into
    place, so a crash or a full disk never leaves a truncated checkpoint at `path`."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    metadata = {"format": FORMAT, "config": json.dumps(config), "extra": json.dumps(extra or {})}
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_checkpoint(path):
    """(state_dict, config, extra) of a checkpoint file, with clear errors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - any reader error means a bad file
        hint = " (textdepth checkpoints are .safetensors files)" if path.suffix != ".safetensors" else ""
        raise CheckpointError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}{hint}") from None
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise CheckpointError(f"{path} is a safetensors file but not a textdepth_ros checkpoint (no model config inside)")
    try:
        config = load_model_config(json.loads(metadata["config"]))
        extra = json.loads(metadata.get("extra", "{}"))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} has an unreadable config: {exc}") from None
    return state, config, extra


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

    state, config, extra = read_checkpoint(path)
    if model is None:
        model = build_model(config, pretrained=False)
    expected = model.state_dict()
    problem = describe_mismatch(expected, state)
    if problem:
        raise CheckpointError(
            f"checkpoint {path} ({config.get('name', '?')}, variant {variant_name(config)}) does not fit this model "
            f"({model.config.get('name', '?')}, variant {model.variant}): {problem}"
        )
    model.load_state_dict(state, strict=True)
    return model.to(torch.device(device)), extra
