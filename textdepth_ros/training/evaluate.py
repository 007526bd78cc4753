"""Model evaluation under PixelFormer's protocol, shared by `textdepth eval` and the
periodic evaluation in training.

Flip test-time augmentation as PixelFormer's eval.py runs it (utils.post_process_depth
with its default 'mean'): the mean of the prediction and the un-flipped prediction of
the flipped image in the middle, but near the left and right edges a blend towards one
of the two (see flip_tta_blend).
"""
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from textdepth_ros.metrics import METRIC_NAMES, MetricAverager, evaluate_depth


def autocast(device: torch.device, dtype):
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def flip_tta_blend(depth: torch.Tensor, depth_of_flipped: torch.Tensor) -> torch.Tensor:
    """Fuse pred(x) and pred(flip(x)) ([B,1,H,W] each) as PixelFormer's post_process_depth.

    With u = column / (W - 1) in [0, 1], a weight ramps from 1 at u <= 0.05 to 0 at
    u >= 0.10: left = clamp(1 - 20 (u - 0.05), 0, 1), and right = left mirrored. Then
      out = right * depth + left * unflipped + (1 - left - right) * (depth + unflipped) / 2
    with unflipped = flip(pred(flip(x))): the outer 5 % of columns on the left come from
    the flipped pass alone, those on the right from the plain pass, and the next 5 %
    ramp to the mean. The ramp is computed in the predictions' dtype, as PixelFormer does.
    """
    unflipped = torch.flip(depth_of_flipped, dims=[3])
    width = depth.shape[-1]
    u = torch.linspace(0.0, 1.0, width, device=depth.device, dtype=depth.dtype)
    left = 1.0 - torch.clamp(20.0 * (u - 0.05), 0.0, 1.0)
    right = torch.flip(left, dims=[0])
    mean = 0.5 * (depth + unflipped)
    return right * depth + left * unflipped + (1.0 - left - right) * mean


@torch.no_grad()
def predict(model, images: torch.Tensor, texts, flip_tta: bool = True, amp_dtype=None) -> torch.Tensor:
    """[B,3,H,W] in [0,1] -> depth [B,1,H,W] float32 metres, with optional flip TTA.
    A text embedding is computed once and reused for the flipped pass."""
    net = model.module if hasattr(model, "module") else model
    embedding = net.encode_text(texts) if net.uses_text else None
    with autocast(images.device, amp_dtype):
        depth = net(images, text_embedding=embedding)["depth"].float()
        if flip_tta:
            flipped = net(torch.flip(images, dims=[3]), text_embedding=embedding)["depth"].float()
            depth = flip_tta_blend(depth, flipped)
    return depth


def evaluate_model(model, loader, device, flip_tta=True, amp_dtype=None, crop="eigen", min_depth=1e-3,
                   max_depth=10.0, per_image=None, progress=True, first_batch_out=None, focal_factors=None) -> dict:
    """Mean metrics over the loader's images (all ranks combined under DDP).
    per_image: a list that receives (name, metrics) rows of this rank.
    first_batch_out: a dict that receives the first batch and its prediction (panels).
    focal_factors: batch -> one depth factor per image (focal scaling, camera_scale.py),
    applied to the prediction before the metrics' clamping; None: none."""
    net = model.module if hasattr(model, "module") else model
    was_training = net.training
    net.eval()
    averager = MetricAverager()
    with tqdm(total=len(loader), desc="eval", unit="batch", disable=not progress, leave=False) as bar:
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)
            pred = predict(net, images, batch["text"], flip_tta, amp_dtype).cpu().numpy()
            if focal_factors is not None:
                pred = pred * np.asarray(focal_factors(batch), dtype=np.float32)[:, None, None, None]
            gt = batch["depth"].numpy()
            if first_batch_out is not None and not first_batch_out:
                first_batch_out.update(batch=batch, pred=pred)
            for b, name in enumerate(batch["name"]):
                metrics = evaluate_depth(pred[b, 0], gt[b, 0], crop=crop, min_depth=min_depth, max_depth=max_depth)
                averager.add(metrics)
                if per_image is not None and metrics is not None:
                    per_image.append((name, metrics))
            bar.update(1)
    net.train(was_training)
    if dist.is_available() and dist.is_initialized():
        totals = torch.tensor([averager.sums[n] for n in METRIC_NAMES] + [averager.count], dtype=torch.float64,
                              device=device if device.type == "cuda" else "cpu")
        dist.all_reduce(totals)
        averager = MetricAverager()
        averager.merge_totals(dict(zip(METRIC_NAMES, totals[:-1].tolist())), int(totals[-1].item()))
    return averager.mean()


def shard(n: int, rank: int, world: int) -> "list[int]":
    """Strided shard of n items without padding: no image is counted twice (unlike
    DistributedSampler, which repeats items to even out the ranks)."""
    return list(np.arange(n)[rank::world])
