"""`train.freeze`: train only part of the network (a small GPU, a short budget, a warm
start whose visual path is already trained).

Names are the network's modules: backbone, pqi, sam, trca, tbcp (PixelFormer's BCP in
the variants without TBCP), head, and `decoder` for pqi + sam. The CLIP text tower is
always frozen; naming `text_encoder` changes nothing.

A frozen module gets requires_grad False (so no gradients, no optimizer state, no stored
activations for its backward) and stays in eval mode while the rest trains
(TextDepthNet.train): drop-path and dropout are off and BatchNorm uses, and keeps, its
running statistics. A frozen module computes what it computes at test time, and its
weights and buffers are bit-identical after training.
"""
from textdepth_ros.errors import UserError

MODULES = ("backbone", "text_encoder", "trca", "pqi", "sam", "tbcp", "head")
ALIASES = {"decoder": ("pqi", "sam")}
FREEZABLE = MODULES + tuple(ALIASES)


def check_freeze(names) -> list:
    """The train.freeze list, validated (config time, before anything is built)."""
    if names is None:
        return []
    if isinstance(names, str):  # --set train.freeze=backbone,head
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"train.freeze must be a list of module names ({', '.join(FREEZABLE)}), not {names!r}")
    unknown = [n for n in names if n not in FREEZABLE]
    if unknown:
        raise UserError(f"train.freeze: unknown module {unknown[0]!r} (known: {', '.join(FREEZABLE)})")
    return list(names)


def freeze(model, names) -> list:
    """Freeze the named modules of `model` (a TextDepthNet); returns the module names frozen."""
    modules = []
    for name in check_freeze(names):
        for module in ALIASES.get(name, (name,)):
            if getattr(model, module) is None:
                raise UserError(f"train.freeze: the '{model.variant}' variant has no {module}")
            if module not in modules:
                modules.append(module)
    for name in modules:
        getattr(model, name).requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError(f"train.freeze {names} leaves nothing to train")
    model.frozen = tuple(m for m in modules if m != "text_encoder")  # the text tower keeps itself in eval
    model.train(model.training)
    return modules


def describe_trainable(model) -> str:
    """'trainable 12.34 M of 56.78 M parameters; frozen: backbone 27.52 M, ...'"""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = [(name, sum(p.numel() for p in getattr(model, name).parameters()))
              for name in MODULES if getattr(model, name) is not None
              and not any(p.requires_grad for p in getattr(model, name).parameters())]
    listed = ", ".join(f"{name} {n / 1e6:.2f} M" for name, n in frozen if n) or "none"
    return f"trainable {trainable / 1e6:.2f} M of {total / 1e6:.2f} M parameters ({trainable:,}); frozen: {listed}"
