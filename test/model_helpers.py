"""Small shared pieces for the network tests."""
import torch

from textdepth_ros.model import build_model


def tiny_model(variant=None, seed=0):
    torch.manual_seed(seed)
    return build_model("tiny", variant=variant, pretrained=False)


def images(batch=1, height=64, width=96, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, height, width, generator=gen)
