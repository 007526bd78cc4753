"""Parameters and FLOPs per part of the network, without allocating weights: the model
is built on PyTorch's meta device (shapes only), so the paper config counts on a laptop."""
import torch
from torch.utils.flop_counter import FlopCounterMode

from textdepth_ros.model.config import load_model_config, variant_name
from textdepth_ros.model.network import PARTS, TextDepthNet, build_on_meta


def count_parameters(model: TextDepthNet) -> dict:
    """part -> parameter count, plus total and trainable (frozen text tower excluded)."""
    counts = {}
    for name, modules in model.parts().items():
        counts[name] = sum(p.numel() for m in modules if m is not None for p in m.parameters())
    counts["total"] = sum(p.numel() for p in model.parameters())
    counts["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts


def count_flops(model: TextDepthNet, height: int = 480, width: int = 640) -> dict:
    """part -> FLOPs of one forward pass at height x width, batch 1 (a multiply-add
    counts 2). The text encoder's share is for one new text; a cached text costs 0."""
    device = next(model.parameters()).device
    images = torch.zeros(1, 3, height, width, device=device)
    texts = ["a photo of a room"] if model.uses_text else None
    if model.text_encoder is not None:
        model.text_encoder.clear_cache()
    counter = FlopCounterMode(display=False, depth=2)
    with counter, torch.no_grad():
        model(images, texts=texts)
    per_module = counter.get_flop_counts()
    flops = {}
    module_names = {"decoder": ["pqi", "sam"]}
    for part in PARTS:
        names = module_names.get(part, [part])
        flops[part] = sum(sum(per_module.get(f"TextDepthNet.{n}", {}).values()) for n in names)
    flops["total"] = sum(per_module.get("Global", {}).values())
    return flops


def model_report(config, height: int = 480, width: int = 640) -> dict:
    model = build_on_meta(load_model_config(config))
    return {
        "config": model.config.get("name", "?"),
        "variant": variant_name(model.config),
        "input": [height, width],
        "parameters": count_parameters(model),
        "flops": count_flops(model, height, width),
    }
