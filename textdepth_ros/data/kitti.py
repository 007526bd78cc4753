"""KITTI (Eigen split) as BTS and PixelFormer read it.

A list line (BTS's eigen_train_files_with_gt.txt / eigen_test_files_with_gt.txt):
  `2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png
   2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png 721.5377`
The image is relative to the data root (KITTI raw); the depth path is relative to the
ground-truth root *inside the image's date folder* (PixelFormer's dataloader joins
gt_path, the first component of the image path and the second field). DEPTH 'None':
no ground truth for that image (the test list has such lines; they are not scored).
Depth PNGs are uint16, metres x 256 (0 = no lidar point).

The KB crop (PixelFormer's --do_kb_crop, the KITTI benchmark's size): the bottom 352
rows and the middle 1216 columns, top = H - 352, left = int((W - 1216) / 2), applied to
image and depth alike. Training then takes a random 352x1120 window (--input_width
1120). Evaluation scores the 352x1216 crop: PixelFormer's online_eval loader crops the
ground truth too, so the paste-back into a full frame in its eval.py is a no-op (its
margins come out 0) and the Garg / KITTI-Eigen crops (metrics.py) are fractions of
352x1216, not of the full frame as in BTS's original evaluation.
"""

import numpy as np

from textdepth_ros.data.nyu import read_list, read_uint16_depth
from textdepth_ros.errors import UserError

KB_CROP = (352, 1216)  # height, width
KITTI_MAX_DEPTH = 80.0
DEPTH_SCALE = 256.0  # PNG value / 256 = metres
KITTI_TEXT = "a photo of a street"  # ours: the lists name no scene type (config/train_kitti.yaml's data.text)


def read_kitti_list(path) -> list:
    """Samples of a KITTI list: `depth` relative to the ground-truth root (the image's
    date folder joined in front, as PixelFormer's dataloader does), scene = the drive."""
    samples = read_list(path)
    for sample in samples:
        parts = sample.rgb.split("/")
        if sample.depth is not None:
            sample.depth = f"{parts[0]}/{sample.depth}"
        sample.scene = parts[1] if len(parts) > 2 else parts[0]
    return samples


def load_kitti_depth(root, sample) -> np.ndarray:
    """HxW float32 metres, 0 = no lidar point (uint16 PNG / 256)."""
    return read_uint16_depth(root, sample, "metres x 256").astype(np.float32) / np.float32(DEPTH_SCALE)


def kb_crop_box(height: int, width: int, name: str = "image") -> tuple:
    """(top, left) of the KB crop in a height x width frame."""
    crop_h, crop_w = KB_CROP
    if height < crop_h or width < crop_w:
        raise UserError(f"{name} is {width}x{height}: the KITTI (KB) crop needs at least {crop_w}x{crop_h}")
    return int(height - crop_h), int((width - crop_w) / 2)


def kb_crop(array: np.ndarray, box: tuple) -> np.ndarray:
    top, left = box
    return array[top:top + KB_CROP[0], left:left + KB_CROP[1]]
