"""Optimizer and PixelFormer's polynomial LR decay, stepped once per optimizer step:
lr(s) = (lr - end) * (1 - s / total) ** 0.9 + end, with end = 0.1 * lr.

`adam` is what PixelFormer's train.py builds: torch.optim.Adam(params, lr) with torch's
defaults (betas 0.9/0.999, eps 1e-8, no weight decay); its --weight_decay 1e-2 and
--adam_eps 1e-3 are parsed and never passed. `adamw` (ours) is AdamW with
train.weight_decay actually applied. With `adam`, a non-zero weight_decay is Adam's
L2 penalty (torch's meaning), which PixelFormer did not use either.
"""
import torch

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def build_optimizer(model, name: str, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]  # the CLIP tower is frozen
    return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay)


def build_scheduler(optimizer, total_steps: int, end_ratio: float = 0.1, power: float = 0.9):
    total = max(int(total_steps), 1)

    def factor(step: int) -> float:
        progress = min(step, total) / total
        return (1.0 - end_ratio) * (1.0 - progress) ** power + end_ratio

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
