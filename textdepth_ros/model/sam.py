"""SAM: PixelFormer's Skip Attention Module and the 4-stage decoder built from it.

At each scale the decoder's pixel queries attend to the encoder's skip features inside
non-overlapping 7x7 windows (Q from the queries, K and V from the skip features, with
Swin's relative-position bias). Between stages PixelShuffle(2) doubles the resolution
and divides the channels by 4, from Q4 at 1/32 down to 1/4.
"""
import torch
import torch.nn.functional as F
from torch import nn

from textdepth_ros.model.attention_bias import AttentionBias
from textdepth_ros.model.windows import (pad_to_windows, relative_position_index, window_attention, window_partition,
                                         window_reverse)


class WindowCrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.attention_bias = AttentionBias()

    def forward(self, queries: torch.Tensor, skips: torch.Tensor) -> torch.Tensor:
        """queries, skips: [B*nW, w*w, C] -> [B*nW, w*w, C]."""
        bw, n, c = queries.shape
        q = self.to_q(queries).view(bw, n, self.heads, -1).transpose(1, 2)
        k, v = self.to_kv(skips).view(bw, n, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn_mask = self.attention_bias(self.relative_position_bias_table, self.relative_position_index, None, q.dtype)
        out = window_attention(q, k, v, attn_mask, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SkipAttentionBlock(nn.Module):
    """Pre-norm window cross-attention + MLP. The residual path carries the queries, as in
    PixelFormer's SAM block (shortcut = the query input); the skip features enter only
    through the attention's keys and values (and the stage's sum in SAM.forward)."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.window = window
        self.norm_q, self.norm_skip, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowCrossAttention(dim, heads, window)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, queries: torch.Tensor, skips: torch.Tensor) -> torch.Tensor:
        """queries, skips: [B, H, W, C] -> [B, H, W, C]."""
        _, h, w, _ = queries.shape
        q = pad_to_windows(self.norm_q(queries), self.window)
        s = pad_to_windows(self.norm_skip(skips), self.window)
        attended = self.attn(window_partition(q, self.window), window_partition(s, self.window))
        attended = window_reverse(attended, self.window, *q.shape[1:3])[:, :h, :w]
        x = queries + attended
        return x + self.mlp(self.norm_mlp(x))


class SAM(nn.Module):
    """One decoder stage: align queries and skips to `dim` channels, attend, add both back."""

    def __init__(self, skip_channels: int, query_channels: int, dim: int, heads: int, window: int):
        super().__init__()
        self.proj_skip = nn.Conv2d(skip_channels, dim, 3, padding=1) if skip_channels != dim else nn.Identity()
        self.proj_query = nn.Conv2d(query_channels, dim, 3, padding=1) if query_channels != dim else nn.Identity()
        self.block = SkipAttentionBlock(dim, heads, window)
        self.norm = nn.LayerNorm(dim)

    def forward(self, skip: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """skip, query: NCHW at the same resolution -> NCHW with `dim` channels."""
        skip, query = self.proj_skip(skip), self.proj_query(query)
        out = self.block(query.permute(0, 2, 3, 1), skip.permute(0, 2, 3, 1))
        # contiguous NCHW, as PixelFormer sums it: a channels-last sum would send the next
        # stage's convolutions down another kernel (same maths, other rounding)
        return self.norm(out).permute(0, 3, 1, 2).contiguous() + skip + query


class SkipAttentionDecoder(nn.Module):
    """Q4 (1/32) -> pixel queries at 1/4 with sam_dims[0] channels."""

    def __init__(self, encoder_channels, pqi_channels: int, sam_dims, sam_heads, window: int):
        super().__init__()
        # Query channels entering each stage: Q4 at 1/32, then PixelShuffle(2) output (C/4).
        query_channels = [sam_dims[1] // 4, sam_dims[2] // 4, sam_dims[3] // 4, pqi_channels]
        self.stages = nn.ModuleList(
            SAM(encoder_channels[i], query_channels[i], sam_dims[i], sam_heads[i], window) for i in range(4)
        )
        self.out_channels = sam_dims[0]

    def forward(self, features, q4: torch.Tensor) -> torch.Tensor:
        q = q4
        for i in (3, 2, 1, 0):
            q = self.stages[i](features[i], q)
            if i > 0:
                q = F.pixel_shuffle(q, 2)
        return q
