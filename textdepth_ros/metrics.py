"""The evaluation protocol, alone: PixelFormer's (= BTS's) NYU evaluation.

Sources (PixelFormer `pixelformer/eval.py` and `utils.py`, inherited from BTS):
- compute_errors: thresh = max(gt/pred, pred/gt); d1/d2/d3 = mean(thresh < 1.25^k);
  rmse, rmse_log, abs_rel = mean(|gt-pred|/gt), sq_rel = mean((gt-pred)^2/gt),
  silog = sqrt(mean(e^2) - mean(e)^2) * 100 with e = ln(pred) - ln(gt) (natural log),
  log10 = mean(|log10(pred) - log10(gt)|).
- before it: pred < min -> min, pred > max -> max, inf -> max, nan -> min;
  valid = (gt > min) & (gt < max), both strict, min_depth_eval=1e-3, max_depth_eval=10;
  with --eigen_crop on NYU the mask is ANDed with rows 45:471, cols 41:601.
- metrics are computed per image and the per-image values averaged over images
  (eval.py sums each image's measures and divides by the number of images).
- precision: its numpy code computes in the prediction's float32, and so do we for
  float32 maps (float64 inputs stay float64): in float64, pixels at a threshold's edge
  move d2/d3 by ~1e-5. Per-image metrics then equal its compute_errors'; we sum over
  images in float64 (it sums in float32 on the GPU).
- KITTI (eval.py with --garg_crop / --eigen_crop, dataset kitti): the crop is a box of
  fractions of the ground truth's size, rows int(a H):int(b H), cols int(c W):int(d W);
  --garg_crop wins when both are given. min/max depth 1e-3 / 80 (the caller's).
- one deviation: a variance that round-off makes slightly negative gives silog 0 here,
  NaN there.
"""
import numpy as np

METRIC_NAMES = ("silog", "abs_rel", "log10", "rmse", "sq_rel", "rmse_log", "d1", "d2", "d3")
LOWER_IS_BETTER = {"silog", "abs_rel", "log10", "rmse", "sq_rel", "rmse_log"}

MIN_DEPTH_EVAL = 1e-3
MAX_DEPTH_EVAL = 10.0
# Eigen crop for NYU at 480x640 (eval.py: eval_mask[45:471, 41:601] = 1).
EIGEN_CROP = (45, 471, 41, 601)
NYU_SHAPE = (480, 640)
# KITTI's crops as fractions (rows from, to, cols from, to) of the GT size (eval.py)
FRACTION_CROPS = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),  # Garg et al., ECCV 2016
    "kitti_eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),  # Eigen et al., NIPS 2014, on KITTI
}
CROPS = ("eigen", *FRACTION_CROPS)  # "eigen": NYU's, at 480x640 only


def protocol_crop(dataset: str, crop):
    """The crop name for valid_mask from a dataset and a user's crop option: 'eigen'
    means NYU's crop on NYU and KITTI's Eigen crop on KITTI (as PixelFormer's
    --eigen_crop does); 'none' / None: no crop."""
    if crop in (None, "none"):
        return None
    return "kitti_eigen" if crop == "eigen" and dataset == "kitti" else crop


def max_rel_diff(depth, reference) -> float:
    """Largest per-pixel |depth - reference| / |reference|: how two implementations of the
    same network (graph vs eager, onnxruntime vs torch) are compared, not a metric."""
    return float(np.max(np.abs(depth - reference) / np.abs(reference)))


def _float_dtype(*arrays):
    """float32 if every array is float32 (a real prediction and GT), else float64."""
    return np.float32 if all(np.asarray(a).dtype == np.float32 for a in arrays) else np.float64


def compute_errors(gt: np.ndarray, pred: np.ndarray) -> dict:
    """Metrics of 1-D arrays of valid pixels (gt > 0, pred > 0), in their precision."""
    dtype = _float_dtype(gt, pred)
    gt = np.asarray(gt, dtype=dtype)
    pred = np.asarray(pred, dtype=dtype)
    thresh = np.maximum(gt / pred, pred / gt)
    err = np.log(pred) - np.log(gt)
    # max(., 0): float round-off can make the variance a hair negative when e is constant.
    silog = np.sqrt(max(np.mean(err ** 2) - np.mean(err) ** 2, 0.0)) * 100
    return {
        "silog": float(silog),
        "abs_rel": float(np.mean(np.abs(gt - pred) / gt)),
        "log10": float(np.mean(np.abs(np.log10(pred) - np.log10(gt)))),
        "rmse": float(np.sqrt(np.mean((gt - pred) ** 2))),
        "sq_rel": float(np.mean((gt - pred) ** 2 / gt)),
        "rmse_log": float(np.sqrt(np.mean(err ** 2))),
        "d1": float(np.mean(thresh < 1.25)),
        "d2": float(np.mean(thresh < 1.25 ** 2)),
        "d3": float(np.mean(thresh < 1.25 ** 3)),
    }


def clamp_prediction(pred: np.ndarray, min_depth: float = MIN_DEPTH_EVAL, max_depth: float = MAX_DEPTH_EVAL) -> np.ndarray:
    pred = np.array(pred, dtype=_float_dtype(pred))  # a copy: the caller's array is not touched
    pred[pred < min_depth] = min_depth
    pred[pred > max_depth] = max_depth
    pred[np.isinf(pred)] = max_depth
    pred[np.isnan(pred)] = min_depth
    return pred


def valid_mask(gt: np.ndarray, crop="eigen", min_depth: float = MIN_DEPTH_EVAL, max_depth: float = MAX_DEPTH_EVAL) -> np.ndarray:
    gt = np.asarray(gt)
    with np.errstate(invalid="ignore"):
        mask = (gt > min_depth) & (gt < max_depth)  # NaN GT compares False: invalid
    if crop == "eigen" and gt.shape == NYU_SHAPE:
        # The crop is defined in 480x640 pixels; other sizes (SUN RGB-D, bags) have no crop.
        top, bottom, left, right = EIGEN_CROP
        crop_mask = np.zeros_like(mask)
        crop_mask[top:bottom, left:right] = True
        mask &= crop_mask
    elif crop in FRACTION_CROPS:
        height, width = gt.shape
        top, bottom, left, right = FRACTION_CROPS[crop]
        crop_mask = np.zeros_like(mask)
        crop_mask[int(top * height):int(bottom * height), int(left * width):int(right * width)] = True
        mask &= crop_mask
    elif crop not in ("eigen", None):
        raise ValueError(f"unknown crop {crop!r} ({', '.join(CROPS)} or None)")
    return mask


def evaluate_depth(pred, gt, crop="eigen", min_depth: float = MIN_DEPTH_EVAL, max_depth: float = MAX_DEPTH_EVAL):
    """Metrics of one image (pred and gt HxW metres, same size); None if no valid pixel."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    mask = valid_mask(gt, crop, min_depth, max_depth)
    if not mask.any():
        return None
    return compute_errors(gt[mask], clamp_prediction(pred, min_depth, max_depth)[mask])


class MetricAverager:
    """Mean over images of per-image metrics (not over the pooled pixels)."""

    def __init__(self):
        self.sums = {name: 0.0 for name in METRIC_NAMES}
        self.count = 0

    def add(self, metrics) -> None:
        if metrics is None:  # an image with no valid pixel does not count (as in eval.py)
            return
        for name in METRIC_NAMES:
            self.sums[name] += float(metrics[name])
        self.count += 1

    def merge_totals(self, sums: dict, count: int) -> None:
        """Add another averager's totals (used to combine DDP ranks)."""
        for name in METRIC_NAMES:
            self.sums[name] += float(sums[name])
        self.count += int(count)

    def mean(self) -> dict:
        out = {name: (self.sums[name] / self.count if self.count else float("nan")) for name in METRIC_NAMES}
        out["count"] = self.count
        return out


def format_table(metrics: dict) -> str:
    """Two-line table in eval.py's column order."""
    head = "".join(f"{name:>10}" for name in METRIC_NAMES)
    row = "".join(f"{metrics[name]:>10.4f}" for name in METRIC_NAMES)
    return f"{head}\n{row}"
