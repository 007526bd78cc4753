"""SUN RGB-D for zero-shot evaluation (Table 2): what is supported.

- Lists in the NYU list format (`rgb_path depth_path [focal]`, relative to a root),
  e.g. written from SUNRGBD's `image/*.jpg` and `depth_bfx/*.png` (or `depth/`).
- Depth PNGs in SUN RGB-D's own encoding: uint16 whose bits are rotated by 3. The
  toolbox (SUNRGBDtoolbox/read3dPoints.m) decodes
      depth = bitor(bitshift(v, -3), bitshift(v, 16 - 3)) / 1000   (metres)
  i.e. depth_mm = ((v >> 3) | (v << 13)) & 0xFFFF, and then clips at 8 m
  (`depthInpaint(depthInpaint > 8) = 8`). We decode the same way; the 8 m clip is
  applied too so numbers match the toolbox. 0 stays invalid.
- Images come from four sensors at different sizes (Kinect v1 480x640, Kinect v2
  530x730, RealSense 531x681, Xtion 441x591); the network takes any size.
- No Eigen crop: it is defined for NYU's 480x640 frames only (eval uses --crop none
  by default for SUN RGB-D).
Not supported: the .mat metadata files (SUNRGBDMeta) and per-sensor intrinsics.
"""
from pathlib import Path

import cv2
import numpy as np

from textdepth_ros.errors import UserError

SUN_MAX_DEPTH = 8.0  # the toolbox's clip


def decode_sunrgbd_depth(raw: np.ndarray) -> np.ndarray:
    """uint16 SUN RGB-D PNG values -> float32 metres (0 = invalid)."""
    if raw.dtype != np.uint16:
        raise UserError(f"SUN RGB-D depth must be uint16, got {raw.dtype}")
    v = raw.astype(np.uint32)
    mm = ((v >> 3) | (v << 13)) & 0xFFFF
    depth = mm.astype(np.float32) / 1000.0
    return np.minimum(depth, SUN_MAX_DEPTH)


def encode_sunrgbd_depth(depth_m: np.ndarray) -> np.ndarray:
    """Inverse of the decoding (without the clip): for writing test fixtures."""
    mm = np.clip(np.round(depth_m * 1000.0), 0, 65535).astype(np.uint32)
    return (((mm << 3) | (mm >> 13)) & 0xFFFF).astype(np.uint16)


def load_sunrgbd_depth(root, sample) -> np.ndarray:
    path = Path(root) / sample.depth
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise UserError(f"cannot read depth {path}")
    return decode_sunrgbd_depth(raw)
