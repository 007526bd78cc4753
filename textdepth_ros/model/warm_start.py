"""Start a model from another checkpoint's weights: the paper model from PixelFormer's.

Every tensor whose name and shape match is copied (an imported PixelFormer checkpoint
fills the backbone, PQI, the SAM decoder and the depth head of the `full` variant). The
text modules the checkpoint lacks start so that the model still computes the checkpoint's
depth (preserving_init.py): TRCA adds zero, TBCP computes the checkpoint's BCP. The CLIP
text tower and, where the checkpoint has no backbone, Swin load their pretrained files as
the config says. With a probe image, the start is measured: the largest per-pixel relative
difference between this model's depth and the checkpoint's own model's (eval mode).
"""
import torch

from textdepth_ros.errors import CheckpointError
from textdepth_ros.model.checkpoint import read_checkpoint
from textdepth_ros.model.config import variant_name
from textdepth_ros.model.network import PRETRAINED_PARTS, TextDepthNet
from textdepth_ros.model.preserving_init import bcp_tensors, silence_trca, tbcp_from_bcp
from textdepth_ros.model.tbcp import TBCP


def _per_module(keys, tensors) -> dict:
    """top-level module -> number of values (parameters and buffers) under it."""
    counts = {}
    for key in keys:
        module = key.split(".")[0]
        counts[module] = counts.get(module, 0) + tensors[key].numel()
    return counts


def warm_start(model, path, pretrained: bool = True, probe=None, device=None) -> dict:
    """Copy the matching tensors of checkpoint `path` into `model`, start the text modules
    it lacks where they keep its depth; then, if `pretrained`, load the config's pretrained
    files for the parts the checkpoint did not fill. `probe` = (image [1, 3, H, W] in [0, 1],
    text): measure the step-0 difference on it, on `device` (the model moves there).
    Returns what happened per top-level module: loaded, new, unused (in the checkpoint but
    not in the model), reshaped (same name, other shape), preserved (notes) and
    step0_difference (None without a probe)."""
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
        "preserved": _preserve(model, state, config, set(k.split(".")[0] for k in loaded if k in parameters)),
        "pretrained": [],
        "step0_difference": None,
    }
    if pretrained:
        missing = [part for part in PRETRAINED_PARTS if part not in report["loaded"]]
        report["pretrained"] = list(model.load_pretrained(parts=missing))
    if probe is not None:
        report["step0_difference"] = step0_difference(model.to(device or "cpu"), state, config, *probe)
    return report


def _preserve(model, state: dict, config: dict, filled: set) -> list:
    """Start TRCA / TBCP where the checkpoint has none so that they keep its depth."""
    notes = []
    if model.trca is not None and "trca" not in filled:
        silence_trca(model.trca)
        notes.append("TRCA adds zero to E4 (output projection at zero)")
    bcp = bcp_tensors(state)
    if isinstance(model.tbcp, TBCP) and "tbcp" not in filled and bcp is not None:
        bins = config["bins"]
        result = tbcp_from_bcp(model.tbcp, *bcp, bins["fixed_min"], bins["dataset_max"])
        notes.append(result["note"])
    return notes


def step0_difference(model, state: dict, config: dict, image: torch.Tensor, text: str) -> float:
    """max over pixels of |depth - source depth| / source depth, both in eval mode, where
    the source is the checkpoint's own model (built here, dropped after)."""
    source = TextDepthNet(config)
    source.load_state_dict(state, strict=True)
    device = next(model.parameters()).device
    source = source.to(device).eval()
    was_training = model.training
    model.eval()
    image = image.to(device)
    try:
        with torch.no_grad():
            expected = source(image, texts=[text] if source.uses_text else None)["depth"]
            got = model(image, texts=[text] if model.uses_text else None)["depth"]
    finally:
        model.train(was_training)
    return float(((got - expected).abs() / expected.abs().clamp_min(1e-12)).max())


def describe_warm_start(report: dict) -> str:
    def fmt(counts):
        return ", ".join(f"{m} {n / 1e6:.2f} M" for m, n in counts.items()) or "none"

    lines = [f"initialised from {report['source']}",
             f"  loaded:            {fmt(report['loaded'])}",
             f"  new:               {fmt(report['new'])}"]
    for note in report["preserved"]:
        lines.append(f"  new, started as:   {note}")
    if report["pretrained"]:
        lines.append(f"  pretrained files:  {', '.join(report['pretrained'])} (as the model config says)")
    if report["unused"]:
        lines.append(f"  not used:          {fmt(report['unused'])}")
    if report["reshaped"]:
        lines.append(f"  shape differs:     {fmt(report['reshaped'])} (kept their own init)")
    if report["step0_difference"] is not None:
        lines.append(f"  step-0 depth vs the checkpoint's model: max relative difference "
                     f"{report['step0_difference']:.1e} (probe image, eval mode)")
    return "\n".join(lines)
