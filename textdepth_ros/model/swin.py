"""Swin Transformer (Liu et al., 2021), computed the way PixelFormer's backbone computes it.

PixelFormer pads each block's features to whole windows *before* the cyclic shift and
builds the shift mask on that padded grid; timm rolls first and pads after, which puts
other tokens into the border windows whenever a stage is not a multiple of the window
(at 480x640 no stage is: 120x160, 60x80, 30x40, 15x20). It also never shrinks the
window or drops the shift on small maps. This module follows PixelFormer, so that
PixelFormer's trained weights give PixelFormer's numbers.

Parameter names are timm's (patch merging at the start of stages 2-4), so timm
checkpoints load as they are and Microsoft's need only the merge renamed (backbone.py).
"""
import re

import torch
from timm.layers import DropPath, Mlp
from torch import nn

from textdepth_ros.errors import UserError
from textdepth_ros.model.attention_bias import AttentionBias
from textdepth_ros.model.windows import (pad_to_windows, relative_position_index, shift_mask, window_attention,
                                         window_partition, window_reverse)

# Published Swin sizes: embedding width, blocks per stage, heads per stage.
SWIN_SIZES = {
    "tiny": dict(embed_dim=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24)),
    "small": dict(embed_dim=96, depths=(2, 2, 18, 2), heads=(3, 6, 12, 24)),
    "base": dict(embed_dim=128, depths=(2, 2, 18, 2), heads=(4, 8, 16, 32)),
    "large": dict(embed_dim=192, depths=(2, 2, 18, 2), heads=(6, 12, 24, 48)),
    # Ours, not a published size (no weights exist for it): the config/model/micro.yaml
    # backbone, ~6x faster than tiny, for CPU experiments and the demo model.
    "micro": dict(embed_dim=32, depths=(1, 1, 2, 1), heads=(1, 2, 4, 8)),
}
SWIN_NAME = re.compile(r"swin_(tiny|small|base|large|micro)_patch4_window(\d+)_(224|384)")


def swin_architecture(name: str) -> dict:
    """'swin_large_patch4_window7_224' (timm's names) -> embed_dim, depths, heads, window."""
    match = SWIN_NAME.fullmatch(str(name))
    if not match:
        raise UserError(f"unknown Swin backbone '{name}': expected swin_<tiny|small|base|large>_patch4_window<N>_<224|384> "
                        "(timm's names, e.g. swin_large_patch4_window7_224)")
    return dict(SWIN_SIZES[match.group(1)], window=int(match.group(2)))


def swin_name(size: str, window: int) -> str:
    """Inverse of swin_architecture (the pretraining resolution that goes with the window)."""
    return f"swin_{size}_patch4_window{window}_{224 if window == 7 else 384}"


class WindowSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.attention_bias = AttentionBias()

    def forward(self, x: torch.Tensor, mask: torch.Tensor = None) -> torch.Tensor:
        """x [B*nW, N, C], mask [nW, N, N] or None -> [B*nW, N, C]."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn_mask = self.attention_bias(self.relative_position_bias_table, self.relative_position_index, mask, q.dtype)
        out = window_attention(q, k, v, attn_mask, self.scale)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window self-attention + MLP, both residual."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, drop_path: float, mlp_ratio: float = 4.0):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowSelfAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """[B, H, W, C] -> [B, H, W, C]: pad to whole windows, then shift (PixelFormer's order)."""
        h, w = x.shape[1:3]
        x = pad_to_windows(x, self.window)
        hp, wp = x.shape[1:3]
        mask = None
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
            mask = shift_mask(hp, wp, self.window, self.shift, x.device)
        x = window_reverse(self.attn(window_partition(x, self.window), mask), self.window, hp, wp)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        return x[:, :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attend(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbours -> one token with twice the channels (odd sizes padded with zeros)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        x = nn.functional.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        h, w = x.shape[1:3]
        # channel order (row, col) offsets (0,0), (1,0), (0,1), (1,1), as Swin concatenates them
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class PatchEmbed(nn.Module):
    """4x4 patches -> embed_dim tokens, NHWC (inputs padded to a multiple of 4)."""

    def __init__(self, embed_dim: int, patch: int = 4):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, embed_dim, patch, stride=patch)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        images = nn.functional.pad(images, (0, (-w) % self.patch, 0, (-h) % self.patch))
        return self.norm(self.proj(images).permute(0, 2, 3, 1))


class SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, window: int, drop_paths, merge: bool):
        super().__init__()
        self.downsample = PatchMerging(dim // 2) if merge else nn.Identity()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, window, shift=window // 2 if i % 2 else 0, drop_path=drop_paths[i])
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        for block in self.blocks:
            x = block(x)
        return x


class SwinTransformer(nn.Module):
    """Images [B, 3, H, W] -> the four stages' outputs [B, H/4.., W/4.., C] (NHWC, no final norm)."""

    def __init__(self, embed_dim: int, depths, heads, window: int, drop_path_rate: float = 0.0):
        super().__init__()
        self.patch_embed = PatchEmbed(embed_dim)
        n = sum(depths)  # stochastic depth grows linearly with depth
        rates = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]
        self.channels = [embed_dim * 2 ** i for i in range(len(depths))]
        self.layers = nn.ModuleList()
        for i, (depth, n_heads) in enumerate(zip(depths, heads)):
            first = sum(depths[:i])
            self.layers.append(SwinStage(self.channels[i], depth, n_heads, window, rates[first:first + depth], merge=i > 0))
        self.apply(_init_weights)

    def forward(self, images: torch.Tensor):
        x = self.patch_embed(images)
        stages = []
        for stage in self.layers:
            x = stage(x)
            stages.append(x)
        return stages


def _init_weights(module: nn.Module) -> None:
    """Swin's initialisation (random-init runs and tests; trained runs load weights)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
