"""Training augmentations of PixelFormer's NYU recipe, as its dataloader
(pixelformer/dataloaders/dataloader.py, from BTS) runs them, on numpy arrays:
image HxWx3 uint8 RGB in, float32 in [0, 1] out (a CutDepth patch can hold metres, see
below); depth HxW float32 metres (0 = invalid). Geometric steps move image and depth
together; photometric steps touch the image only.

PixelFormer's order: border mask, rotation (uint8 image, PIL bilinear; depth nearest),
to float, CutDepth, random crop to the input size (KITTI: 352x1216 -> 352x1120), flip,
colour jitter. Its KITTI recipe has no border mask and no CutDepth (both NYU-only in its
dataloader) and a narrower brightness range. `cutdepth: paper` is our variant: the CutDepth
paper's geometry, a patch scaled to [0, 1], pasted last.

Randomness is split from the arithmetic: `draw` takes every random number from the
`rng` passed in (the dataset derives it from (seed, epoch, sample index), so the
augmentation of an image does not depend on worker count or order and a resumed run
sees exactly the batches an uninterrupted one would), and `apply` is deterministic, so
a test can give it the very numbers PixelFormer's dataloader drew.
"""
from dataclasses import dataclass

import numpy as np
from PIL import Image

from textdepth_ros.errors import UserError

# BTS/PixelFormer: "To avoid blank boundaries due to pixel registration", NYU GT outside
# rows 45:472, cols 43:608 of 480x640 is set to 0 before training.
TRAIN_BORDER = (45, 472, 43, 608)
CUTDEPTH_MODES = ("pixelformer", "paper", "none")


@dataclass
class AugmentConfig:
    rotate_degrees: float = 2.5  # uniform in [-d, d]; PixelFormer: --do_random_rotate --degree 2.5
    flip: bool = True  # horizontal, p = 0.5
    color: bool = True  # gamma/brightness/colour jitter, p = 0.5
    brightness: tuple = (0.75, 1.25)  # NYU's range in PixelFormer (KITTI uses 0.9..1.1)
    border_mask: bool = True  # TRAIN_BORDER
    cutdepth: str = "pixelformer"  # pixelformer | paper | none (see cut_depth_*)
    cutdepth_p: float = 0.75  # CutDepth's size hyper-parameter p (PixelFormer hard-codes 0.75)
    max_depth: float = 10.0  # 'paper' CutDepth: depth / max_depth -> [0, 1]
    crop_size: "tuple | None" = None  # (height, width): a random window of this size (KITTI: 352x1120)

    def __post_init__(self):
        if self.cutdepth is False or self.cutdepth is None:  # YAML `cutdepth: false`
            self.cutdepth = "none"
        if self.cutdepth not in CUTDEPTH_MODES:
            raise UserError(f"augment.cutdepth must be one of {', '.join(CUTDEPTH_MODES)}, not {self.cutdepth!r}")
        if self.crop_size is not None:
            size = self.crop_size
            if not (isinstance(size, (list, tuple)) and len(size) == 2
                    and all(isinstance(v, int) and v > 0 for v in size)):
                raise UserError(f"augment.crop_size must be [height, width] in pixels or null, not {size!r}")
            self.crop_size = tuple(size)


@dataclass
class Draws:
    """Every random number one sample's augmentation uses."""

    angle: float  # degrees, counter-clockwise (PIL's convention)
    cut: tuple  # (a, b, c, d) ~ U(0, 1): CutDepth's position and size
    flip: bool
    color: "tuple | None"  # (gamma, brightness, (r, g, b) factors) or None for no jitter
    crop: "tuple | None" = None  # (top, left) of the random window, None: no crop


def draw(rng: np.random.Generator, cfg: AugmentConfig, shape: tuple = None) -> Draws:
    """The random numbers of one sample; `shape` (H, W) is needed for a random crop,
    whose offsets are drawn last (so the other draws do not depend on crop_size)."""
    angle = rng.uniform(-cfg.rotate_degrees, cfg.rotate_degrees) if cfg.rotate_degrees > 0 else 0.0
    cut = tuple(float(v) for v in rng.uniform(0.0, 1.0, size=4))
    flip = bool(cfg.flip and rng.uniform() > 0.5)
    color = None
    if cfg.color and rng.uniform() > 0.5:
        color = (rng.uniform(0.9, 1.1), rng.uniform(*cfg.brightness), tuple(rng.uniform(0.9, 1.1, size=3)))
    crop = None
    if cfg.crop_size is not None and shape is not None and tuple(shape) != cfg.crop_size:
        (height, width), (crop_h, crop_w) = shape, cfg.crop_size
        if height < crop_h or width < crop_w:
            raise UserError(f"a {width}x{height} training image is smaller than augment.crop_size {crop_w}x{crop_h}")
        crop = (int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1)))
    return Draws(float(angle), cut, flip, color, crop)


def mask_border(depth: np.ndarray) -> np.ndarray:
    """Zero GT outside TRAIN_BORDER; for other sizes the same fractions of the frame
    (PixelFormer crops instead when trained at another input size; NYU is 480x640)."""
    h, w = depth.shape
    top, bottom, left, right = TRAIN_BORDER
    if (h, w) != (480, 640):
        top, bottom = round(top * h / 480), round(bottom * h / 480)
        left, right = round(left * w / 640), round(right * w / 640)
    out = np.zeros_like(depth)
    out[top:bottom, left:right] = depth[top:bottom, left:right]
    return out


def rotate(image: np.ndarray, depth: np.ndarray, degrees: float):
    """PIL's Image.rotate, as PixelFormer calls it: about the centre, counter-clockwise,
    same size, zero fill; bilinear on the uint8 image (rounded back to uint8), nearest
    on depth (no mixed depths at edges)."""
    image = np.asarray(Image.fromarray(image).rotate(degrees, resample=Image.BILINEAR))
    return image, _rotate_nearest(depth, degrees)


def _rotate_nearest(depth: np.ndarray, degrees: float) -> np.ndarray:
    """Nearest-neighbour rotation that picks the pixels PixelFormer's does. It rotates
    its depth as a uint16 PIL image, and Pillow samples 16-bit images with other
    rounding than float ones (0.3 % of pixels differ); so we rotate maps of 1-based row
    and column numbers as 16-bit images and gather our float depth through them."""
    h, w = depth.shape
    rows = np.broadcast_to(np.arange(1, h + 1, dtype=np.uint16)[:, None], (h, w))
    cols = np.broadcast_to(np.arange(1, w + 1, dtype=np.uint16)[None, :], (h, w))
    src_rows, src_cols = (np.asarray(Image.fromarray(np.ascontiguousarray(m)).rotate(degrees, resample=Image.NEAREST))
                          .astype(np.int64) for m in (rows, cols))
    inside = (src_rows > 0) & (src_cols > 0)  # 0 = filled: outside the source image
    out = np.zeros_like(depth, dtype=np.float32)
    out[inside] = depth[src_rows[inside] - 1, src_cols[inside] - 1]
    return out


def color_jitter(image: np.ndarray, gamma: float, brightness: float, colours) -> np.ndarray:
    """PixelFormer's augment_image: gamma, brightness, per-channel factors, clip to [0, 1]
    (the channel product in float64 as its numpy code does, then float32)."""
    image = image ** np.float32(gamma)
    image = image * np.float32(brightness)
    image = (image * np.asarray(colours, np.float64)).astype(np.float32)
    return np.clip(image, 0.0, 1.0)


def cut_depth_pixelformer(image: np.ndarray, depth: np.ndarray, cut, p: float = 0.75) -> np.ndarray:
    """CutDepth as PixelFormer's dataloader does it (its lines cite arXiv 2107.07684).

    With H, W the image size and a, b, c, d ~ U(0, 1): l = int(a W), u = int(b H),
    w = int(max((W - a W) c p, 1)), h = int(max((H - b H) d p, 1)), and the patch is
    rows l:l+h, columns u:u+w: the horizontal start indexes rows and the vertical one
    columns, so on 480x640 a patch is empty whenever a W >= H (a >= 0.75), i.e. it is
    pasted about 75 % of the time, and it can be cut off at the bottom. The patch holds
    the depth in metres (not scaled), in all three channels; the colour jitter that
    follows may then scale and clip it to [0, 1]."""
    height, width = image.shape[:2]
    a, b, c, d = cut
    row, col = int(a * width), int(b * height)
    cols = int(max((width - a * width) * c * p, 1))
    rows = int(max((height - b * height) * d * p, 1))
    image = image.copy()
    image[row:row + rows, col:col + cols, :] = depth[row:row + rows, col:col + cols, None]
    return image


def cut_depth_paper(image: np.ndarray, depth: np.ndarray, cut, p: float = 0.75,
                    max_depth: float = 10.0) -> np.ndarray:
    """Our variant: the CutDepth paper's geometry (Ishii & Yamashita 2021). left = a W,
    top = b H, width = max((W - left) c p, 1), height = max((H - top) d p, 1), rows
    indexed by the vertical quantities and columns by the horizontal ones (so the patch
    always lies inside the image), depth scaled to [0, 1] by max_depth."""
    h, w = depth.shape
    a, b, c, d = cut
    left, top = int(a * w), int(b * h)
    width = int(max((w - left) * c * p, 1))
    height = int(max((h - top) * d * p, 1))
    patch = np.clip(depth[top:top + height, left:left + width] / max_depth, 0.0, 1.0)
    image = image.copy()
    image[top:top + height, left:left + width, :] = patch[..., None]
    return image


def apply(image: np.ndarray, depth: np.ndarray, draws: Draws, cfg: AugmentConfig):
    """The deterministic pipeline (PixelFormer's order) for given draws."""
    if cfg.border_mask:
        depth = mask_border(depth)
    if draws.angle:
        image, depth = rotate(image, depth, draws.angle)
    image = image.astype(np.float32) / 255.0
    if cfg.cutdepth == "pixelformer":
        image = cut_depth_pixelformer(image, depth, draws.cut, cfg.cutdepth_p)
    if draws.crop is not None:  # PixelFormer's random_crop: x = randint(0, W - w), y = randint(0, H - h)
        (top, left), (height, width) = draws.crop, cfg.crop_size
        image, depth = image[top:top + height, left:left + width], depth[top:top + height, left:left + width]
    if draws.flip:
        image, depth = image[:, ::-1], depth[:, ::-1]
    if draws.color is not None:
        image = color_jitter(image, *draws.color)
    if cfg.cutdepth == "paper":
        image = cut_depth_paper(image, depth, draws.cut, cfg.cutdepth_p, cfg.max_depth)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(depth, dtype=np.float32)


def augment(image: np.ndarray, depth: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig):
    """image HxWx3 uint8, depth HxW metres -> (image float32, depth float32), augmented."""
    if image.dtype != np.uint8:
        raise TypeError(f"augment takes the uint8 image as loaded, not {image.dtype}")
    return apply(image, depth, draw(rng, cfg, image.shape[:2]), cfg)
