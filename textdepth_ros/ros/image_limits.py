"""Frame sizes the node accepts, checked on the header before any pixel is touched.

A valid but absurd frame is as bad as a broken one: a 1x100000 image makes the tiny
model pad it to 32x100000 and spend 28 s of CPU time and over 1 GB on it. Frames outside the limits
are skipped and counted; the limits are node parameters (`max_pixels`, `min_side`).
"""
from typing import Optional, Tuple


def size_problem(height: int, width: int, max_pixels: int, min_side: int) -> Optional[Tuple[str, str]]:
    """(counter, reason) if a height x width frame is outside the limits, else None.
    Empty frames pass: the decoder reports them as unreadable."""
    if height == 0 or width == 0:
        return None
    if height * width > max_pixels:
        return "too_large", f"{width}x{height} is {height * width} pixels, over max_pixels {max_pixels}"
    if min(height, width) < min_side:
        return "too_small", f"{width}x{height} has a side under min_side {min_side} pixels"
    return None
