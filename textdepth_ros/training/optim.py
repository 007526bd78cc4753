"""AdamW + PixelFormer's polynomial decay, stepped once per optimizer step:
lr(s) = (lr - end) * (1 - s / total) ** 0.9 + end, with end = 0.1 * lr.
Weight decay is actually passed to AdamW (PixelFormer parsed --weight_decay 1e-2 but
built its optimizer without it)."""
import torch


def build_optimizer(model, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]  # the CLIP tower is frozen
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def build_scheduler(optimizer, total_steps: int, end_ratio: float = 0.1, power: float = 0.9):
    total = max(int(total_steps), 1)

    def factor(step: int) -> float:
        progress = min(step, total) / total
        return (1.0 - end_ratio) * (1.0 - progress) ** power + end_ratio

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
