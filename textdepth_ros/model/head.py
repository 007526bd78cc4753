"""Depth head (paper eq. 6) and our uncertainty map.

A 3x3 conv turns the 1/4-resolution pixel queries into per-pixel logits over the bins;
depth is the expectation of the bin centres under their softmax, and its standard
deviation is the uncertainty. Both are upsampled x4 (bilinear), as in PixelFormer.
"""
import torch
import torch.nn.functional as F
from torch import nn


def expected_depth(probs: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Eq. 6: d = sum_k p_k c(b_k). probs [B, n, h, w], centres [B, n] -> [B, 1, h, w]."""
    return (probs * centres[:, :, None, None]).sum(dim=1, keepdim=True)


def depth_std(probs: torch.Tensor, centres: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """sqrt(sum_k p_k (c_k - d)^2): how spread the pixel's bin distribution is (metres)."""
    var = (probs * (centres[:, :, None, None] - depth) ** 2).sum(dim=1, keepdim=True)
    return var.clamp_min(0).sqrt()


class BinHead(nn.Module):
    def __init__(self, in_channels: int, n_bins: int, upsample: int = 4):
        super().__init__()
        self.logits = nn.Conv2d(in_channels, n_bins, 3, padding=1)
        self.upsample = upsample

    def forward(self, queries: torch.Tensor, centres: torch.Tensor):
        """queries [B, C, h, w], centres [B, n] -> depth, uncertainty [B, 1, 4h, 4w] (float32)."""
        logits = self.logits(queries)
        dtype = torch.promote_types(logits.dtype, torch.float32)  # fp32 under autocast, fp64 stays fp64
        probs = logits.to(dtype).softmax(dim=1)
        centres = centres.to(dtype)
        depth = expected_depth(probs, centres)
        std = depth_std(probs, centres, depth)
        up = dict(scale_factor=self.upsample, mode="bilinear", align_corners=False)
        return F.interpolate(depth, **up), F.interpolate(std, **up)
