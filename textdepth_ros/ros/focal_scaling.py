"""Focal scaling for a ROS frame (camera_scale.py says what and why): the input's focal
lengths and size are those of the CameraInfo published with the depth (roi, binning and
resize applied: ros/camera_info.py)."""
from textdepth_ros.camera_scale import FocalScaling, check_mode, rescaled

__all__ = ["FocalScaling", "check_mode", "scale_to_training_camera"]


def scale_to_training_camera(scaling, pred, info, log):
    """`pred` at the training camera's metric scale for a frame whose published
    CameraInfo is `info` (None: none yet, so unscaled); `log(line)` hears of each change
    of factor. Returns the (possibly rescaled) prediction."""
    if info is None:
        factor, line = scaling.factor()
    else:
        factor, line = scaling.factor(info.k[0], info.k[4], info.width, info.height)
    if line:
        log(line)
    return rescaled(pred, factor)
