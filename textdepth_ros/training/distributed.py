"""torchrun + DistributedDataParallel: NCCL on GPUs, gloo on CPU. A plain
`textdepth train` (no torchrun) is a world of one and never touches torch.distributed."""
import math
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler

from textdepth_ros.errors import UserError
from textdepth_ros.devices import resolve_device


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


def wrap_model(model, ctx: Context, sync_bn: bool = False):
    """DDP; with sync_bn, BatchNorm becomes SyncBatchNorm (GPUs only: statistics over the
    global batch). PixelFormer's DDP keeps plain BatchNorm, each process normalising over
    its own images, and so does the default. PyTorch's SyncBatchNorm has no CPU kernel.
    DDP's broadcast_buffers copies rank 0's running statistics to every replica at each
    forward, so replicas stay identical either way."""
    if not ctx.distributed:
        return model
    if ctx.device.type == "cuda":
        if sync_bn:
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


class ResumableSampler(Sampler):
    """This process's share of a seeded shuffle of n items, padded so that every
    optimizer step is full, able to start part-way through an epoch (exact resume).

    The order is torch's DistributedSampler's (randperm seeded with seed + epoch, padded
    by repeating its start, then every world-th item from rank): with PixelFormer's run
    (8 processes x 1 image, its sampler's seed 0) it is the order PixelFormer's sampler
    gave, 36,253 images -> 4,532 steps per epoch. We pad to a multiple of the global step
    (train.batch_size x train.accumulate) rather than of the world size, so one process
    with 8 images per step has full steps too (PixelFormer on one GPU ends each epoch
    with a partial batch of 5).
    """

    def __init__(self, n: int, ctx: Context, seed: int, images_per_step: int):
        self.n, self.rank, self.world, self.seed = n, ctx.rank, ctx.world, seed
        self.total = math.ceil(n / images_per_step) * images_per_step
        self.epoch = 0
        self.start = 0  # items of this epoch already done by this process

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> "list[int]":
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        indices = torch.randperm(self.n, generator=generator).tolist()
        indices = (indices * math.ceil(self.total / self.n))[:self.total]
        return indices[self.rank::self.world]

    def __iter__(self):
        return iter(self.order()[self.start:])

    def __len__(self) -> int:
        return self.total // self.world - self.start
