"""Start a model from another checkpoint's weights: the paper model from PixelFormer's.

Every tensor whose name and shape match is copied (an imported PixelFormer checkpoint
fills the backbone, PQI, the SAM decoder and the depth head of the `full` variant); the
rest keep their initialisation (TRCA and TBCP are new; the CLIP text tower and, where the
checkpoint has no backbone, Swin load their pretrained files as the config says).
"""
import torch

from textdepth_ros.errors import CheckpointError
from textdepth_ros.model.checkpoint import read_checkpoint
from textdepth_ros.model.config import variant_name
from textdepth_ros.model.network import PRETRAINED_PARTS


def _per_module(keys, tensors) -> dict:
    """top-level module -> number of values (parameters and buffers) under it."""
    counts = {}
    for key in keys:
        module = key.split(".")[0]
        counts[module] = counts.get(module, 0) + tensors[key].numel()
    return counts


def warm_start(model, path, pretrained: bool = True) -> dict:
    """Copy the matching tensors of checkpoint `path` into `model`; then, if `pretrained`,
    load the config's pretrained files for the parts the checkpoint did not fill.
    Returns what happened per top-level module: loaded, new, unused (in the checkpoint
    but not in the model) and reshaped (same name, other shape)."""
    state, config, _ = read_checkpoint(path)
    own = model.state_dict()
    loaded = [k for k in own if k in state and state[k].shape == own[k].shape]
    parameters = dict(model.named_parameters())
    if not any(k in parameters for k in loaded):
        raise CheckpointError(f"nothing in {path} ({config.get('name', '?')}) fits the {model.config.get('name', '?')} "
                              "model: no weight has the same name and shape")
    with torch.no_grad():
        for key in loaded:
            own[key].copy_(state[key])
    report = {
        "source": f"{path} ({config.get('name', '?')}, {variant_name(config)})",
        "loaded": _per_module(loaded, own),
        "new": _per_module([k for k in own if k not in state], own),
        "unused": _per_module([k for k in state if k not in own], state),
        "reshaped": _per_module([k for k in own if k in state and k not in loaded], own),
        "pretrained": [],
    }
    if pretrained:
        missing = [part for part in PRETRAINED_PARTS if part not in report["loaded"]]
        report["pretrained"] = list(model.load_pretrained(parts=missing))
    return report


def describe_warm_start(report: dict) -> str:
    def fmt(counts):
        return ", ".join(f"{m} {n / 1e6:.2f} M" for m, n in counts.items()) or "none"

    lines = [f"initialised from {report['source']}",
             f"  loaded:            {fmt(report['loaded'])}",
             f"  new (own init):    {fmt(report['new'])}"]
    if report["pretrained"]:
        lines.append(f"  pretrained files:  {', '.join(report['pretrained'])} (as the model config says)")
    if report["unused"]:
        lines.append(f"  not used:          {fmt(report['unused'])}")
    if report["reshaped"]:
        lines.append(f"  shape differs:     {fmt(report['reshaped'])} (kept their own init)")
    return "\n".join(lines)
