"""torchrun + DistributedDataParallel: NCCL on GPUs, gloo on CPU. A plain
`textdepth train` (no torchrun) is a world of one and never touches torch.distributed."""
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from textdepth_ros.errors import UserError
from textdepth_ros.inference import resolve_device


class Context:
    def __init__(self, device, rank=0, world=1, local_rank=0):
        self.device, self.rank, self.world, self.local_rank = device, rank, world, local_rank

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def setup(device_spec: str = "auto") -> Context:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device, warning = resolve_device(device_spec)
    if warning:
        print(f"warning: {warning}")
    if world <= 1:
        return Context(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(device, rank, world, local_rank)


def cleanup(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model, ctx: Context):
    """DDP with SyncBatchNorm on GPUs. PyTorch's SyncBatchNorm has no CPU kernel, so on
    gloo/CPU BatchNorm stays per process; DDP's broadcast_buffers copies rank 0's
    running statistics to every replica at each forward, so replicas stay identical."""
    if not ctx.distributed:
        return model
    if ctx.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[ctx.local_rank], output_device=ctx.local_rank)
    return DistributedDataParallel(model)


def sync_buffers(model, ctx: Context) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to all ranks. DDP does this
    at the start of every forward; doing it before evaluation and at the end makes the
    replicas identical after the last step too (per-process BN on CPU otherwise leaves
    each rank with its own last update)."""
    if ctx.distributed:
        for buf in model.buffers():
            dist.broadcast(buf.data, 0)


class ResumableSampler(DistributedSampler):
    """DistributedSampler that can start an epoch part-way (exact mid-epoch resume):
    the order is still a function of (seed, epoch) only."""

    def __init__(self, dataset, ctx: Context, seed: int):
        super().__init__(dataset, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def __iter__(self):
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start
