"""Bin centres: TBCP (paper eq. 2-5) and PixelFormer's BCP for the ablation.

TBCP fuses a global visual vector from the pixel queries Q4 with the text embedding
through a learned gate, predicts n_bins bin widths from the fusion, and places the bin
centres inside a depth range [d_min(T), d_max(T)] read from the text (bounded inside
the dataset's range). With `text_range` off the range is PixelFormer's fixed one.
"""
import math

import torch
from torch import nn


def gated_fusion(f_gap: torch.Tensor, f_text: torch.Tensor, gate: nn.Linear) -> torch.Tensor:
    """Eq. 2-3: F_c = W_g [F_gap ; F_text];  F_fu = s * F_gap + (1 - s) * F_text,
    s = sigmoid(F_c). The gate decides, per channel, how much scene structure to take
    from the image and how much from the text."""
    f_c = gate(torch.cat([f_gap, f_text], dim=-1))
    s = torch.sigmoid(f_c)
    return s * f_gap + (1.0 - s) * f_text


def bin_widths(logits: torch.Tensor) -> torch.Tensor:
    """Eq. 4 (the softmax after the 3-layer MLP): normalised widths b, sum_i b_i = 1."""
    return torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)


def bin_centres(widths: torch.Tensor, d_min: torch.Tensor, d_max: torch.Tensor) -> torch.Tensor:
    """Eq. 5: c_i = d_min + (d_max - d_min) * (b_i / 2 + sum_{j<i} b_j).
    widths [B, n]; d_min, d_max [B] -> centres [B, n], strictly increasing."""
    before = torch.cumsum(widths, dim=-1) - widths  # sum_{j<i} b_j
    return d_min[:, None] + (d_max - d_min)[:, None] * (widths / 2 + before)


def text_depth_range(raw: torch.Tensor, lo: float, hi: float):
    """[d_min(T), d_max(T)] from two unbounded numbers, with lo < d_min < d_max < hi:
    d_max = lo + (hi - lo) * sigmoid(a);  d_min = lo + (d_max - lo) * sigmoid(b)."""
    raw = raw.to(torch.promote_types(raw.dtype, torch.float32))
    d_max = lo + (hi - lo) * torch.sigmoid(raw[:, 0])
    d_min = lo + (d_max - lo) * torch.sigmoid(raw[:, 1])
    return d_min, d_max


def three_layer_mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, cout))


class TBCP(nn.Module):
    def __init__(self, query_channels: int, text_width: int, n_bins: int, hidden: int,
                 dataset_min: float, dataset_max: float, fixed_min: float, text_range: bool = True):
        super().__init__()
        c = text_width
        self.lo, self.hi, self.fixed_min = float(dataset_min), float(dataset_max), float(fixed_min)
        self.align = nn.Conv2d(query_channels, c, kernel_size=1)  # Q4 -> text width
        self.gate = nn.Linear(2 * c, c)  # W_g
        self.widths_mlp = three_layer_mlp(c, hidden, n_bins)
        self.text_range = text_range
        if text_range:
            self.range_head = nn.Sequential(nn.Linear(c, c), nn.GELU(), nn.Linear(c, 2))
            # Start at PixelFormer's range: d_min = fixed_min, d_max = 98 % of the way to
            # dataset_max (sigmoid(4); nearer would flatten d_max's gradient); the text moves it.
            nn.init.normal_(self.range_head[-1].weight, std=1e-3)
            d_max0 = self.lo + (self.hi - self.lo) / (1 + math.exp(-4.0))
            frac_min = (self.fixed_min - self.lo) / (d_max0 - self.lo)  # d_min sits between lo and d_max
            with torch.no_grad():
                self.range_head[-1].bias.copy_(torch.tensor([4.0, math.log(frac_min / (1 - frac_min))]))

    def forward(self, q4: torch.Tensor, f_text: torch.Tensor):
        """q4 [B, Cq, h, w], f_text [B, C] -> centres [B, n_bins], range [B, 2]."""
        f_gap = self.align(q4).mean(dim=(2, 3))  # GAP(conv(Q4))
        f_text = f_text.to(f_gap.dtype)
        fused = gated_fusion(f_gap, f_text, self.gate)
        widths = bin_widths(self.widths_mlp(fused))
        if self.text_range:
            d_min, d_max = text_depth_range(self.range_head(f_text), self.lo, self.hi)
        else:
            d_min = torch.full_like(widths[:, 0], self.fixed_min)
            d_max = torch.full_like(widths[:, 0], self.hi)
        return bin_centres(widths, d_min, d_max), torch.stack([d_min, d_max], dim=1)


class BCP(nn.Module):
    """PixelFormer's Bin Centre Predictor: GAP(Q4) -> MLP (GELU) -> softmax widths,
    centres in the fixed range [fixed_min, dataset_max]. The ablation without TBCP."""

    def __init__(self, query_channels: int, n_bins: int, hidden: int, fixed_min: float, dataset_max: float):
        super().__init__()
        self.d_min, self.d_max = float(fixed_min), float(dataset_max)
        self.mlp = nn.Sequential(nn.Linear(query_channels, hidden), nn.GELU(), nn.Linear(hidden, n_bins))

    def forward(self, q4: torch.Tensor, f_text=None):
        widths = bin_widths(self.mlp(q4.mean(dim=(2, 3))))
        d_min = torch.full_like(widths[:, 0], self.d_min)
        d_max = torch.full_like(widths[:, 0], self.d_max)
        return bin_centres(widths, d_min, d_max), torch.stack([d_min, d_max], dim=1)
