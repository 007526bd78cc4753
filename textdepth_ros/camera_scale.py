"""The camera a model's metric scale belongs to, and the factor that maps another camera
onto it.

A monocular network reads depth from apparent size, so its metres hold for the camera it
was trained with. A checkpoint records that camera (the "camera" field: fx, fy in pixels
at width x height, the size of the training images). Another camera's depth is brought
to that scale by multiplying the prediction by

    factor = f_input / f_train,   f = sqrt(fx * fy),

the focal lengths compared at the same image size: the input's (the K published on
depth/camera_info, for an image of W x H) taken to the training size first,
f_input = sqrt(fx * fy) * sqrt(W_train * H_train / (W * H)). So what is compared is the
field of view: the same camera at another resolution (a resize, binning, an ONNX
backend's resize) gets factor 1, and at the training size the factor is exactly the
ratio of focal lengths (a camera with twice the training focal length makes everything
look twice as near: the depth is doubled back). Measured on a trained model, against
comparing focal lengths in pixels and against Metric3D's other way (resizing the image
to the training focal length): docs/camera-scale.md, bench/focal_scaling_bench.py.

fx != fy (non-square pixels, or an anisotropic resize): the geometric mean, since an
object's apparent area scales with fx * fy; NYU's Kinect differs by 0.12 %.

No torch here: the node imports this before it loads a model.
"""
import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from textdepth_ros.errors import UserError

FOCAL_RANGE = (1.0, 1e6)  # pixels
SIDE_RANGE = (1, 65536)  # pixels
MODES = ("auto", "off")


@dataclass(frozen=True)
class Camera:
    """Focal lengths in pixels, at the image size width x height they refer to."""
    fx: float
    fy: float
    width: int
    height: int

    @property
    def focal(self) -> float:
        return mean_focal(self.fx, self.fy)

    def to_record(self) -> dict:
        return {"fx": self.fx, "fy": self.fy, "width": self.width, "height": self.height}

    def describe(self) -> str:
        focal = f"{self.fx:.2f} px" if self.fx == self.fy else f"fx {self.fx:.2f} fy {self.fy:.2f} px"
        return f"{focal} at {self.width}x{self.height}"


def mean_focal(fx: float, fy: float) -> float:
    """The geometric mean (fx itself when fx == fy, so equal cameras give exactly 1)."""
    return float(fx) if fx == fy else math.sqrt(fx * fy)


def camera_from_record(record, where: str = "camera") -> Camera:
    """A Camera from its record ({fx, fy, width, height}), checked like a config: a
    checkpoint someone sent is not trusted. UserError names `where` and the field."""
    if not isinstance(record, dict):
        raise UserError(f"{where} must be a mapping {{fx, fy, width, height}}, got {type(record).__name__}")
    unknown = sorted(set(record) - {"fx", "fy", "width", "height"})
    missing = [k for k in ("fx", "fy", "width", "height") if k not in record]
    if unknown or missing:
        raise UserError(f"{where} must have exactly fx, fy, width, height"
                        + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else "")
                        + (f"; missing: {', '.join(missing)}" if missing else ""))
    for key in ("fx", "fy"):
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not FOCAL_RANGE[0] <= value <= FOCAL_RANGE[1]:
            raise UserError(f"{where}: {key} must be a focal length in pixels in "
                            f"[{FOCAL_RANGE[0]:g}, {FOCAL_RANGE[1]:g}], got {value!r}")
    for key in ("width", "height"):
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, int) or not SIDE_RANGE[0] <= value <= SIDE_RANGE[1]:
            raise UserError(f"{where}: {key} must be an integer in {SIDE_RANGE[0]}..{SIDE_RANGE[1]}, got {value!r}")
    return Camera(float(record["fx"]), float(record["fy"]), int(record["width"]), int(record["height"]))


def check_mode(mode: str) -> Optional[str]:
    """None if `mode` is a focal_scaling value, else what it must be."""
    return None if mode in MODES else " or ".join(MODES)


class FocalScaling:
    """The depth factor for an input focal length under `mode` (auto: whenever both the
    input's and the training camera's focal lengths are known; off: 1), and one line
    each time the factor or its reason changes (callers log it once, not per frame)."""

    def __init__(self, mode: str, training: Optional[Camera]):
        if check_mode(mode):
            raise UserError(f"focal_scaling must be {check_mode(mode)}, got {mode!r}")
        self.mode, self.training = mode, training
        self._said = None  # what the last line said

    def factor(self, fx: Optional[float] = None, fy: Optional[float] = None, width: int = 0, height: int = 0):
        """(factor, line or None) for an input image of width x height whose focal lengths
        in pixels are fx, fy (None: unknown). The line is new information only."""
        factor, why, line = self._decide(fx, fy, width, height)
        said = (why, round(factor, 6))  # a camera_info that jitters in the 7th digit is no news
        if said == self._said:
            return factor, None
        self._said = said
        return factor, line

    def _decide(self, fx, fy, width, height):
        """(factor, reason, line)."""
        trained = self.training
        if self.mode == "off":
            about = f" (training camera {trained.describe()})" if trained else ""
            return 1.0, "off", f"focal scaling off: depth is not rescaled{about}"
        if trained is None:
            return 1.0, "no training camera", ("focal scaling auto: the checkpoint records no training camera, "
                                               "depth is not rescaled (record it with `textdepth set-camera`)")
        if not fx or not fy or not width or not height:
            return 1.0, "no input focal", "focal scaling auto: no focal length for the input yet, depth is not rescaled"
        area = (trained.width * trained.height) / (width * height)
        at_training_size = mean_focal(fx, fy) * (1.0 if area == 1.0 else math.sqrt(area))
        factor = at_training_size / trained.focal
        focal = f"{fx:.2f} px" if fx == fy else f"fx {fx:.2f} fy {fy:.2f} px"
        resized = "" if area == 1.0 else f", {at_training_size:.2f} px at the training size"
        return factor, "scaled", (f"focal scaling auto: depth x{factor:.4f} (input focal {focal} at "
                                  f"{width}x{height}{resized}, vs training camera {trained.describe()})")


def rescaled(pred, factor: float):
    """A Prediction (inference.py) at another metric scale: depth, its uncertainty (a
    standard deviation of the same depth) and the bins' range all times `factor`, in
    float32, so a factor of 2 doubles every value exactly."""
    if factor == 1.0:
        return pred
    f = np.float32(factor)
    return replace(pred, depth=pred.depth * f, uncertainty=pred.uncertainty * f,
                   depth_range=(pred.depth_range[0] * factor, pred.depth_range[1] * factor), scale=pred.scale * factor)
