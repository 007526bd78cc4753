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


def frame_size_problem(height: int, width: int, params, what: str = "image"):
    """(counter, reason) if a frame is outside params' max_pixels / min_side (the node's
    parameters), else None; checked on a message's or file header's size before any pixel
    is read. Empty frames pass: decoding says why."""
    if height == 0 or width == 0:
        return None
    try:
        check_pixels(height, width, params["max_pixels"], what, "raise the max_pixels parameter to allow it")
    except UserError as exc:
        return "too_large", str(exc)
    try:
        check_min_side(height, width, params["min_side"], what, "lower the min_side parameter to allow it")
    except UserError as exc:
        return "too_small", str(exc)
    return None


def describe_limit(max_pixels: int) -> str:
    side = int(max_pixels ** 0.5)
    return f"{side}x{side}" if side * side == max_pixels else f"{max_pixels:,} pixels"


def header_size(path):
    """(height, width) an image file (a path or bytes) claims, read from its header without
    decoding the pixels; None when it is not one of the formats `read_rgb` reads."""
    from textdepth_ros.image_formats import FILE_FORMATS, header_size as format_header_size, identify

    if isinstance(path, (bytes, bytearray)):
        head = bytes(path[:16])
    else:
        with open(path, "rb") as f:
            head = f.read(16)
    fmt = identify(head)
    if fmt not in FILE_FORMATS:
        return None
    try:
        return format_header_size(path, fmt)
    except ValueError:
        return None


def read_rgb(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """HxWx3 uint8 RGB of an image file in one of image_formats.FILE_FORMATS (told by its
    content) whose header's size is within `max_pixels`, checked before decoding, so no
    huge decode ever starts; other formats are refused unread."""
    import cv2

    from textdepth_ros.image_formats import FILE_FORMATS, decode

    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        bgr = decode(path, FILE_FORMATS, cv2.IMREAD_COLOR, lambda h, w: check_pixels(h, w, max_pixels, f"image {path}"),
                     what=f"image {path}")
    except ValueError as exc:
        raise UserError(f"cannot read {exc}") from None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
