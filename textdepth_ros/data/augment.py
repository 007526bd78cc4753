"""Training augmentations of PixelFormer's NYU recipe (its dataloader, from BTS), on
numpy arrays: image HxWx3 float32 in [0, 1], depth HxW float32 metres (0 = invalid).
Geometric steps move image and depth together; photometric steps touch the image only.

Every random draw comes from the `rng` passed in, which the dataset derives from
(seed, epoch, sample index): augmentations do not depend on worker count or order,
so a resumed run sees exactly the batches an uninterrupted one would.
"""
from dataclasses import dataclass

import cv2
import numpy as np

# BTS/PixelFormer: "To avoid blank boundaries due to pixel registration", NYU GT outside
# rows 45:472, cols 43:608 of 480x640 is set to 0 before training.
TRAIN_BORDER = (45, 472, 43, 608)


@dataclass
class AugmentConfig:
    rotate_degrees: float = 2.5  # uniform in [-d, d]; BTS: do_random_rotate, degree 2.5
    flip: bool = True  # horizontal, p = 0.5
    color: bool = True  # gamma/brightness/colour jitter, p = 0.5
    brightness: tuple = (0.75, 1.25)  # NYU's range in BTS (KITTI uses 0.9..1.1)
    border_mask: bool = True  # TRAIN_BORDER
    cutdepth: bool = True  # PixelFormer always pastes a CutDepth patch on NYU
    cutdepth_p: float = 0.75  # CutDepth's size hyper-parameter p (arXiv 2107.07684)
    max_depth: float = 10.0  # depth -> [0, 1] for the CutDepth patch


def mask_border(depth: np.ndarray) -> np.ndarray:
    """Zero GT outside TRAIN_BORDER; for other sizes the same fractions of the frame."""
    h, w = depth.shape
    top, bottom, left, right = TRAIN_BORDER
    if (h, w) != (480, 640):
        top, bottom = round(top * h / 480), round(bottom * h / 480)
        left, right = round(left * w / 640), round(right * w / 640)
    out = np.zeros_like(depth)
    out[top:bottom, left:right] = depth[top:bottom, left:right]
    return out


def rotate(image: np.ndarray, depth: np.ndarray, degrees: float):
    """Rotate about the centre: bilinear for the image, nearest for depth (no mixed
    depths at edges), zero fill (invalid) outside — as BTS does with PIL."""
    h, w = depth.shape
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    image = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    depth = cv2.warpAffine(depth, matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    return image, depth


def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness=(0.75, 1.25)) -> np.ndarray:
    """BTS augment_image: gamma U(0.9,1.1), brightness U(b), per-channel U(0.9,1.1), clip."""
    gamma = rng.uniform(0.9, 1.1)
    image = image ** gamma
    image = image * rng.uniform(*brightness)
    image = image * rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    return np.clip(image, 0.0, 1.0)


def cut_depth(image: np.ndarray, depth: np.ndarray, rng: np.random.Generator, p: float = 0.75,
              max_depth: float = 10.0) -> np.ndarray:
    """CutDepth (Ishii & Yamashita 2021): paste a rectangle of the GT depth, scaled to
    [0, 1], into the input image. With a, b, c, d ~ U(0, 1): left = a*W, top = b*H,
    width = max((W - left) * c * p, 1), height = max((H - top) * d * p, 1).
    Rows are indexed by the vertical quantities and columns by the horizontal ones
    (PixelFormer's code swaps them, which distorts the patch on non-square images)."""
    h, w = depth.shape
    a, b, c, d = rng.uniform(0.0, 1.0, size=4)
    left, top = int(a * w), int(b * h)
    width = int(max((w - left) * c * p, 1))
    height = int(max((h - top) * d * p, 1))
    patch = np.clip(depth[top:top + height, left:left + width] / max_depth, 0.0, 1.0)
    image = image.copy()
    image[top:top + height, left:left + width, :] = patch[..., None]
    return image


def augment(image: np.ndarray, depth: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig):
    """The training pipeline in BTS/PixelFormer order: border mask, rotation, flip,
    colour jitter, then CutDepth."""
    if cfg.border_mask:
        depth = mask_border(depth)
    if cfg.rotate_degrees > 0:
        image, depth = rotate(image, depth, rng.uniform(-cfg.rotate_degrees, cfg.rotate_degrees))
    if cfg.flip and rng.uniform() > 0.5:
        image, depth = image[:, ::-1], depth[:, ::-1]
    if cfg.color and rng.uniform() > 0.5:
        image = color_jitter(image, rng, cfg.brightness)
    if cfg.cutdepth:
        image = cut_depth(image, depth, rng, cfg.cutdepth_p, cfg.max_depth)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(depth, dtype=np.float32)
