"""Colorized depth for people: near is warm, far is cool (turbo), invalid is black."""
from pathlib import Path

import cv2
import numpy as np


def colorize_depth(depth: np.ndarray, d_min: float = None, d_max: float = None) -> np.ndarray:
    """float depth [H, W] (NaN/inf/<=0 invalid) -> RGB uint8 [H, W, 3]."""
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if d_min is None or d_max is None:
        vals = depth[valid]
        lo, hi = (np.percentile(vals, [2, 98]) if vals.size else (0.0, 1.0))
        d_min = lo if d_min is None else d_min
        d_max = hi if d_max is None else d_max
    span = max(float(d_max) - float(d_min), 1e-6)
    scaled = np.where(valid, (depth - d_min) / span, 0.0)
    gray = (255 * (1.0 - np.clip(scaled, 0, 1))).astype(np.uint8)  # near = 255 = red end of turbo
    rgb = cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def save_preview(path, depth: np.ndarray, d_min: float = None, d_max: float = None) -> None:
    """PNG (or the format of path's suffix). Encoded in memory and written by Python, so a
    full disk raises OSError with its errno (cv2.imwrite only returns False)."""
    rgb = colorize_depth(depth, d_min, d_max)
    ok, encoded = cv2.imencode(Path(path).suffix or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode a preview as {Path(path).suffix}")
    Path(path).write_bytes(encoded.tobytes())
