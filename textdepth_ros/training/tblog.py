"""TensorBoard: scalars and image panels (RGB | prediction | GT | error), rank 0 only."""
import cv2
import numpy as np

from textdepth_ros.preview import colorize_depth


def error_map(pred: np.ndarray, gt: np.ndarray, max_rel: float = 0.5) -> np.ndarray:
    """|pred - gt| / gt on valid GT, 0..max_rel mapped to inferno; invalid is black."""
    valid = gt > 0
    rel = np.where(valid, np.abs(pred - gt) / np.where(valid, gt, 1.0), 0.0)
    gray = (255 * np.clip(rel / max_rel, 0, 1)).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def panel(image: np.ndarray, pred: np.ndarray, gt: np.ndarray, max_depth: float = 10.0) -> np.ndarray:
    """image [3,H,W] in [0,1], pred/gt [H,W] metres -> HxWx3 uint8 strip of 4 views."""
    rgb = (np.clip(image.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
    valid = gt[gt > 0]
    hi = float(np.percentile(valid, 98)) if valid.size else max_depth
    views = [rgb, colorize_depth(pred, 0.0, hi), colorize_depth(np.where(gt > 0, gt, np.nan), 0.0, hi),
             error_map(pred, gt)]
    return np.concatenate(views, axis=1)


def log_panel(writer, tag: str, image, pred, gt, step: int) -> None:
    writer.add_image(tag, panel(image, pred, gt), step, dataformats="HWC")
