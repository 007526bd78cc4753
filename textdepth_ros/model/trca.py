"""TRCA: Text-guided Reverse Cross-Attention (paper eq. 1), on the 1/32 features E4.

Our reading (docs/network.md): E4' = 1x1 conv of E4 to the text width C. For each of the
N = h*w pixels, X = [F_text ; E4'] (N x 2C) forms the text-led query; keys and values
come from the pixels alone:
    Q = X Wq,  K = E4' Wk,  V = E4' Wv          (all N x 2C)
    F_fusion = softmax(Q K^T / sqrt(2C)) V      (eq. 1, d = 2C)
An MLP maps F_fusion back to E4's channels and adds it to E4 (residual), so the
visual detail of E4 is kept and the text only adds to it.
"""
import math

import torch
from torch import nn


def text_guided_reverse_cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Eq. 1: F_fusion = Softmax(Q K^T / sqrt(d)) V, with Q, K, V of shape [B, N, d]."""
    d = q.shape[-1]
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d)
    return torch.matmul(scores.softmax(dim=-1), v)


class TRCA(nn.Module):
    def __init__(self, visual_channels: int, text_width: int):
        super().__init__()
        c = text_width
        self.align = nn.Conv2d(visual_channels, c, kernel_size=1)  # E4 -> E4' (channel alignment)
        self.to_q = nn.Linear(2 * c, 2 * c)
        self.to_k = nn.Linear(c, 2 * c)
        self.to_v = nn.Linear(c, 2 * c)
        self.norm = nn.LayerNorm(2 * c)
        self.mlp = nn.Sequential(
            nn.Linear(2 * c, visual_channels),
            nn.GELU(),
            nn.Linear(visual_channels, visual_channels),
        )

    def forward(self, e4: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """e4 [B, Cv, h, w], text [B, C] -> enhanced E4 [B, Cv, h, w]."""
        b, _, h, w = e4.shape
        pixels = self.align(e4).flatten(2).transpose(1, 2)  # E4'  [B, N, C]
        tiled_text = text[:, None, :].to(pixels.dtype).expand(-1, pixels.shape[1], -1)
        x = torch.cat([tiled_text, pixels], dim=-1)  # X   [B, N, 2C]
        fused = text_guided_reverse_cross_attention(self.to_q(x), self.to_k(pixels), self.to_v(pixels))
        delta = self.mlp(self.norm(fused))  # [B, N, Cv]
        return e4 + delta.transpose(1, 2).reshape(b, -1, h, w)
