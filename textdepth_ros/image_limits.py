"""How large an input image may be, checked before it costs memory.

The network's memory grows with the pixel count (a 20000x20000 image asks for
gigabytes before the first layer), and an image file's header can claim any size, so
`textdepth predict` reads the header first and the node checks each message's
width x height (`check_pixels`, `check_min_side`) before decoding.
"""
from pathlib import Path

import numpy as np

from textdepth_ros.errors import UserError

DEFAULT_MAX_PIXELS = 4096 * 4096
# The network's coarsest features are 1/32 of the image: a thinner side is mostly padding,
# and a 1x100000 image (padded to 32x100000) cost the tiny model 28 s of CPU time.
DEFAULT_MIN_SIDE = 32


def check_pixels(height: int, width: int, max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image",
                 remedy: str = "downscale it or raise --max-pixels") -> None:
    """UserError when height x width is empty or over `max_pixels` (0 = no limit)."""
    if height <= 0 or width <= 0:
        raise UserError(f"{what} is empty ({width}x{height})")
    if max_pixels and height * width > max_pixels:
        raise UserError(f"{what} is {width}x{height} = {height * width:,} pixels, over the limit of "
                        f"{max_pixels:,} ({describe_limit(max_pixels)}); {remedy}")


def check_min_side(height: int, width: int, min_side: int = DEFAULT_MIN_SIDE, what: str = "image",
                   remedy: str = "") -> None:
    """UserError when a side of height x width is shorter than `min_side` pixels."""
    if min(height, width) < min_side:
        raise UserError(f"{what} is {width}x{height}, a side under {min_side} pixels"
                        + (f"; {remedy}" if remedy else ""))


def describe_limit(max_pixels: int) -> str:
    side = int(max_pixels ** 0.5)
    return f"{side}x{side}" if side * side == max_pixels else f"{max_pixels:,} pixels"


def header_size(path) -> tuple:
    """(height, width) an image file (a path or a binary file object) claims, read from its
    header without decoding the pixels; None for a format Pillow does not know (OpenCV
    reads more formats)."""
    from PIL import Image, UnidentifiedImageError

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # we judge the size ourselves
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return height, width


def read_rgb(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """HxWx3 uint8 RGB of an image file whose size is within `max_pixels`: the header's
    claim is checked before decoding (formats Pillow cannot read are decoded under
    OpenCV's own 2^30-pixel cap and checked after), so no huge decode ever starts."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    claimed = header_size(path)
    if claimed is not None:
        check_pixels(*claimed, max_pixels, f"image {path}")
    try:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. over OpenCV's own pixel limit
        raise UserError(f"cannot read image {path}: {' '.join(str(exc).split())}") from None
    if bgr is None:
        raise UserError(f"cannot read image {path} (not an image format OpenCV reads, or a broken file)")
    check_pixels(*bgr.shape[:2], max_pixels, f"image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
