"""The training camera a run records in its checkpoints (camera_scale.py): the focal
length of its train list's focal column, at the size of its images.

Training feeds the images at their own size (the augmentations rotate, flip and crop;
none resizes), so the list's focal length is the one the network sees. A list without a
focal column (PixelFormer's dense NYU list) is NYU's camera, as the list reader assumes
and PixelFormer's dataloader does. A list mixing cameras (KITTI's drives: 707-721 px)
records the median, and says the spread: the network learned an average of them.
"""
import statistics

from textdepth_ros.data.nyu import load_rgb
from textdepth_ros.camera_scale import Camera


def list_camera(root, samples, size=None) -> "tuple[Camera, str]":
    """(the camera, one line saying where it came from) of a non-empty train list;
    `size` (height, width): the frame the network sees when it is a fixed crop of the
    images (KITTI's KB crop, as import-pixelformer --dataset kitti records it)."""
    focals = [s.focal for s in samples]
    focal = statistics.median(focals)
    height, width = size or load_rgb(root, samples[0]).shape[:2]
    camera = Camera(focal, focal, width, height)
    listed = sum(s.focal_listed for s in samples)
    if listed == 0:
        source = "NYU's (the train list has no focal column)"
    elif listed < len(samples):
        source = f"from the train list's focal column ({len(samples) - listed} lines without one: NYU's assumed)"
    else:
        source = "from the train list's focal column"
    spread = f"; the list's focal lengths span {min(focals):.2f}..{max(focals):.2f} px, median recorded" \
        if max(focals) > min(focals) else ""
    return camera, f"training camera: {camera.describe()}, {source}{spread}"
