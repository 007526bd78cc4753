"""Evaluating a trained model with the right scene texts and with controls.

  right     each test image with its own description
  shuffled  the descriptions permuted between the test images (no image keeps its own)
  constant  one description for every test image
  median-scaled  the right-text prediction rescaled per image so its median equals the
            ground truth's: what the model gets right apart from the scale (an oracle
            no real model has; it shows how much of the error is the scale)
  flat      (no model) every pixel at its image's true median depth: perfect scale and no
            structure at all, the reference a model's structure has to beat

Metrics are eval's (metrics.evaluate_depth, PixelFormer's protocol with flip TTA), per
image then averaged; predictions are kept for the pictures.
"""
import numpy as np
import torch

from textdepth_ros.data.scale_world import describe
from textdepth_ros.metrics import MetricAverager, evaluate_depth
from textdepth_ros.training.evaluate import predict

# One description for every test image: a middle-sized room of each world (office: 4-7.5 m
# deep, in the middle of the scene world's 2.2-9 m; "medium-sized": s = 1).
CONSTANT_TEXT = {"scene": "a photo of a office", "scale": describe(2, 0)}
METRICS = ("abs_rel", "rmse", "d1")


def derangement(n: int, seed: int) -> "list[int]":
    """A seeded permutation of range(n) that moves every index (n >= 2)."""
    order = np.random.default_rng(seed).permutation(n)
    fixed = [i for i in range(n) if order[i] == i]
    for a, b in zip(fixed, fixed[1:] + fixed[:1]):  # swap the fixed points among themselves
        order[a] = b
    if len(fixed) == 1:  # one fixed point: swap it with its neighbour's target
        i = fixed[0]
        j = (i + 1) % n
        order[i], order[j] = order[j], order[i]
    return [int(v) for v in order]


def control_texts(texts, control: str, world: str, seed: int) -> "list[str]":
    if control == "right":
        return list(texts)
    if control == "shuffled":
        return [texts[j] for j in derangement(len(texts), seed)]
    if control == "constant":
        return [CONSTANT_TEXT[world]] * len(texts)
    raise ValueError(control)


def load_test_set(dataset) -> dict:
    """All test images of a dataset as tensors (the sets here are small)."""
    items = [dataset[i] for i in range(len(dataset))]
    return {"image": torch.stack([it["image"] for it in items]), "depth": np.stack([it["depth"][0].numpy() for it in items]),
            "text": [it["text"] for it in items]}


@torch.no_grad()
def predictions(model, test: dict, texts, batch_size: int = 8) -> np.ndarray:
    """Depth [N, H, W] of every test image (flip TTA as eval runs it)."""
    out = []
    for start in range(0, len(test["image"]), batch_size):
        images = test["image"][start:start + batch_size]
        chunk = texts[start:start + batch_size] if model.uses_text else None
        out.append(predict(model, images, chunk, flip_tta=True)[:, 0].numpy())
    return np.concatenate(out)


def flat_at_true_median(gts: np.ndarray) -> np.ndarray:
    return np.stack([np.full_like(gt, np.median(gt[gt > 1e-3])) for gt in gts])


def score(preds: np.ndarray, gts: np.ndarray, median_scaled: bool = False) -> dict:
    averager = MetricAverager()
    for pred, gt in zip(preds, gts):
        if median_scaled:
            valid = gt > 1e-3
            pred = pred * (np.median(gt[valid]) / np.median(pred[valid]))
        averager.add(evaluate_depth(pred, gt, crop=None))
    means = averager.mean()
    return {name: float(means[name]) for name in METRICS}


def evaluate_with_controls(model, test: dict, world: str, seed: int) -> "tuple[dict, dict]":
    """({row: metrics}, {row: predictions}): 'right' and 'median-scaled', and for text
    models 'shuffled' and 'constant'."""
    rows, preds = {}, {}
    controls = ("right", "shuffled", "constant") if model.uses_text else ("right",)
    for control in controls:
        preds[control] = predictions(model, test, control_texts(test["text"], control, world, seed))
        rows[control] = score(preds[control], test["depth"])
    rows["median-scaled"] = score(preds["right"], test["depth"], median_scaled=True)
    return rows, preds
