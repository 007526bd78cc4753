"""PQI: Pixel Query Initialiser (PixelFormer). Pyramid pooling (PSPNet's PPM) on the
(text-enhanced) 1/32 features gives the initial pixel queries Q4 with global context:
pool at scales 1, 2, 3, 6 -> 1x1 conv -> upsample, concatenate with the input, 3x3 conv.

Normalisation as PixelFormer's code runs it: the pooling branches use GroupNorm with
two channels per group (GroupNorm(256) at 512 channels; PixelFormer switches to GN
for the 1x1 branch, where BatchNorm fails at batch 1, and the reassigned setting
carries over to the other three), the bottleneck uses BatchNorm.
"""
import torch
import torch.nn.functional as F
from torch import nn

CHANNELS_PER_GROUP = 2


def conv_norm_relu(cin: int, cout: int, kernel: int, norm: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), norm, nn.ReLU(inplace=True))


class PyramidPoolingQueries(nn.Module):
    def __init__(self, in_channels: int, channels: int, pool_scales=(1, 2, 3, 6)):
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        self.branches = nn.ModuleList(
            conv_norm_relu(in_channels, channels, 1, nn.GroupNorm(channels // CHANNELS_PER_GROUP, channels))
            for _ in self.pool_scales
        )
        self.bottleneck = conv_norm_relu(in_channels + len(self.pool_scales) * channels, channels, 3,
                                         nn.BatchNorm2d(channels))

    def forward(self, e4: torch.Tensor) -> torch.Tensor:
        size = e4.shape[-2:]
        pooled = [
            F.interpolate(branch(F.adaptive_avg_pool2d(e4, scale)), size=size, mode="bilinear", align_corners=False)
            for scale, branch in zip(self.pool_scales, self.branches)
        ]
        return self.bottleneck(torch.cat([e4, *pooled], dim=1))
