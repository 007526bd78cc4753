"""PixelFormer's SILog training loss (pixelformer/networks/... silog_loss, from BTS):
d = ln(pred) - ln(gt) over pixels with gt > 0.1 m (NYU), pooled over the batch;
loss = 10 * sqrt(mean(d^2) - 0.85 * mean(d)^2)."""
import torch


def silog_loss(pred: torch.Tensor, gt: torch.Tensor, variance_focus: float = 0.85, min_depth: float = 0.1):
    """pred, gt [B,1,H,W] metres. Returns a scalar, or None when no pixel is valid."""
    mask = gt > min_depth
    if not bool(mask.any()):
        return None
    d = torch.log(pred.float()[mask]) - torch.log(gt.float()[mask])
    return torch.sqrt((d ** 2).mean() - variance_focus * d.mean() ** 2) * 10.0
