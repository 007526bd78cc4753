"""Which torch device a `device` option means: one rule for the node, predict, eval and
training; and a `--threads` option that holds only while its command runs."""
from contextlib import contextmanager

import torch

from textdepth_ros.errors import UserError


def resolve_device(spec: str = "auto"):
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> (torch.device, warning or None).
    CUDA asked for but absent falls back to CPU with one warning."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu"), None
    if spec == "cpu":
        return torch.device("cpu"), None
    if spec == "cuda" or spec.startswith("cuda:"):
        try:
            device = torch.device(spec)
        except RuntimeError:
            raise UserError(f"bad device '{spec}' (auto, cpu, cuda or cuda:N)") from None
        if not torch.cuda.is_available():
            return torch.device("cpu"), f"device '{spec}' asked for but CUDA is not available: running on CPU"
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device '{spec}' does not exist ({torch.cuda.device_count()} CUDA devices)")
        return device, None
    raise UserError(f"bad device '{spec}' (auto, cpu, cuda or cuda:N)")


@contextmanager
def torch_threads(count: int = 0):
    """torch's intra-op thread count `count` (0: unchanged) inside the block, the previous
    one after it: a command run in-process (tests, a notebook) leaves the process as it was.
    (On CPU, a bf16 forward's sums depend on the thread count.)"""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
