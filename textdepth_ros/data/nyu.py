"""NYU Depth v2 in the BTS/PixelFormer layout: list files + scene folders.

A list line is `RGB DEPTH [FOCAL]`, paths relative to the data root:
  test (Eigen, 654 lines):  `bathroom/rgb_00045.jpg bathroom/sync_depth_00045.png 518.8579`
  train (BTS, 24,231 lines): `/kitchen_0028b/rgb_00045.jpg /kitchen_0028b/sync_depth_00045.png 518.8579`
  train (PixelFormer's nyudepthv2_train_files_with_gt_dense.txt, 36,253 lines): three
    paths, `bedroom_0130/rgb_00000.jpg bedroom_0130/sync_depth_00000.png
    bedroom_0130/dense/sync_depth_dense_00000.png`. PixelFormer's dataloader reads the
    first two and never the third (it fixes the focal length at 518.8579), so neither
    do we: a third field that is not a number is ignored.
The train lists' leading '/' is not an absolute path: BTS joins it as
`data_path + "./" + path`; we strip it. DEPTH may be 'None' (images without GT).
Depth PNGs are uint16 millimetres (BTS divides by 1000); 0 means no measurement.
"""
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from textdepth_ros.errors import UserError

# Kinect colour camera of NYU Depth v2 at 480x640 (the toolbox's camera_params.m);
# the lists' third column is fx.
NYU_INTRINSICS = {"fx": 518.8579, "fy": 519.4696, "cx": 325.5824, "cy": 253.7362, "height": 480, "width": 640}
NYU_FOCAL = NYU_INTRINSICS["fx"]


def nyu_camera(height: int, width: int) -> tuple:
    """(fx, fy, cx, cy) of NYU's Kinect scaled to height x width: the camera make-dataset's
    rooms (and the demo's) are seen by, so a model trained on them knows its focal length."""
    sx, sy = width / NYU_INTRINSICS["width"], height / NYU_INTRINSICS["height"]
    return NYU_INTRINSICS["fx"] * sx, NYU_INTRINSICS["fy"] * sy, NYU_INTRINSICS["cx"] * sx, NYU_INTRINSICS["cy"] * sy


@dataclass
class Sample:
    rgb: str  # path relative to the data root (no leading '/')
    depth: "str | None"  # None when the list says 'None'
    focal: float
    scene: str  # first path component: 'kitchen_0028b' (train) or 'bathroom' (test)
    focal_listed: bool = True  # False: the line gives no focal length (NYU's is assumed)


def _relative(path: str) -> str:
    return path.lstrip("/")


def _focal(field: str) -> "tuple | None":
    """The third column: (its focal length, True), or (NYU's, False) when it is a path (the
    dense list); None when it is neither."""
    try:
        return float(field), True
    except ValueError:
        return (NYU_FOCAL, False) if "/" in field or "." in field else None


def parse_line(line: str, where: str = "") -> "Sample | None":
    """One list line -> Sample; blank lines and '#' comments -> None."""
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    if len(fields) < 2:
        raise UserError(f"{where}: expected 'RGB DEPTH [FOCAL]', got {line.strip()!r}")
    rgb = _relative(fields[0])
    depth = None if fields[1] == "None" else _relative(fields[1])
    focal = _focal(fields[2]) if len(fields) > 2 else (NYU_FOCAL, False)
    if focal is None:
        raise UserError(f"{where}: third field {fields[2]!r} is neither a focal length nor a path")
    focal, listed = focal
    if not 0 < focal < float("inf"):  # some copies of the lists write 0.0; NYU has one camera
        focal, listed = NYU_FOCAL, False
    scene = rgb.split("/")[0] if "/" in rgb else ""
    return Sample(rgb=rgb, depth=depth, focal=focal, scene=scene, focal_listed=listed)


def read_list(path) -> "list[Sample]":
    path = Path(path)
    if not path.is_file():
        raise UserError(f"list file not found: {path}")
    samples = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        sample = parse_line(line, f"{path}:{number}")
        if sample is not None:
            samples.append(sample)
    if not samples:
        raise UserError(f"list file {path} has no entries")
    return samples


def load_rgb(root, sample: Sample) -> np.ndarray:
    """HxWx3 uint8 RGB."""
    path = Path(root) / sample.rgb
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_uint16_depth(root, sample: Sample, unit: str) -> np.ndarray:
    """The sample's depth PNG as HxW uint16, refused in one line when it is missing, unreadable
    or not single-channel uint16 (`unit` names what its values count, for that line)."""
    if sample.depth is None:
        raise UserError(f"{sample.rgb} has no depth in its list")
    path = Path(root) / sample.depth
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise UserError(f"cannot read depth {path}")
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise UserError(f"depth {path} must be a single-channel uint16 PNG ({unit}), got {raw.dtype} {raw.shape}")
    return raw


def load_depth(root, sample: Sample) -> np.ndarray:
    """HxW float32 metres, 0 = invalid (uint16 millimetre PNG / 1000, as BTS does)."""
    return read_uint16_depth(root, sample, "millimetres").astype(np.float32) / 1000.0


def save_depth_png(path, depth_m: np.ndarray) -> None:
    """Metres -> uint16 millimetre PNG (0 stays invalid)."""
    mm = np.clip(np.round(np.nan_to_num(depth_m, nan=0.0, posinf=0.0) * 1000.0), 0, 65535).astype(np.uint16)
    if not cv2.imwrite(str(path), mm):
        raise OSError(f"could not write {path}")
