"""Small shared pieces for the network tests."""
import collections

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from textdepth_ros.model import build_model


def tiny_model(variant=None, seed=0):
    torch.manual_seed(seed)
    return build_model("tiny", variant=variant, pretrained=False)


def images(batch=1, height=64, width=96, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, height, width, generator=gen)


class CountOps(TorchDispatchMode):
    """aten ops as dispatched (below autocast, so its casts are counted)."""

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def casts(self) -> int:
        return self.ops["aten.to"] + self.ops["aten._to_copy"]
