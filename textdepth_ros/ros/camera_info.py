"""The intrinsics of the image actually received, from the camera's CameraInfo.

A CameraInfo's K, P, width and height describe the full-resolution calibration; the
image published with it is the region `roi` of that (all zeros: the whole of it),
binned by `binning_x` x `binning_y` (0 or 1: none). image_geometry's
PinholeCameraModel, which depth_image_proc uses, reduces K and P to the image that
way: the principal point moves by the ROI offset, then focal lengths, principal point
and the P translation divide by the binning. If the image still differs in size from
that (roi / binning) size, it is taken as a resize and K and P scale with it, as
image_proc's resize node does (cx * scale, not (cx + 0.5) * scale - 0.5).

The CameraInfo published with the depth image describes the depth image as it is:
the reduced, scaled K and P, its own width and height, roi and binning cleared. A
consumer that reads K directly and one that goes through PinholeCameraModel then
back-project the depth image the same way.
"""
import numpy as np
from sensor_msgs.msg import CameraInfo, RegionOfInterest

from textdepth_ros.ros.pointcloud import valid_intrinsics


def _roi(info: CameraInfo) -> tuple:
    """(x_offset, y_offset, width, height) of the image in calibration pixels."""
    roi = info.roi
    if roi.x_offset == 0 and roi.y_offset == 0 and roi.width == 0 and roi.height == 0:
        return 0, 0, int(info.width), int(info.height)
    box = int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)
    if roi.width == 0 or roi.height == 0:
        raise ValueError(f"camera_info roi {box[2]}x{box[3]} at ({box[0]}, {box[1]}) is empty")
    if info.width and info.height and (box[0] + box[2] > info.width or box[1] + box[3] > info.height):
        raise ValueError(f"camera_info roi {box[2]}x{box[3]} at ({box[0]}, {box[1]}) does not fit the "
                         f"{info.width}x{info.height} calibration")
    return box


def image_camera_info(info: CameraInfo, header, height: int, width: int) -> CameraInfo:
    """The CameraInfo of an image of height x width taken with `info`'s camera (roi and
    binning applied, then scaled if the size still differs). ValueError says why it
    cannot be used (a roi outside the calibration, unusable focal lengths)."""
    x_offset, y_offset, roi_width, roi_height = _roi(info)
    bin_x, bin_y = max(1, int(info.binning_x)), max(1, int(info.binning_y))
    k = np.array(info.k, dtype=np.float64).reshape(3, 3)
    p = np.array(info.p, dtype=np.float64).reshape(3, 4)
    k[0, 2] -= x_offset
    k[1, 2] -= y_offset
    p[0, 2] -= x_offset
    p[1, 2] -= y_offset
    # Then binning: divides the first two rows (for P: focal length, principal point, Tx / Ty).
    reduced_width, reduced_height = roi_width // bin_x, roi_height // bin_y
    scale_x = width / reduced_width if reduced_width else 1.0
    scale_y = height / reduced_height if reduced_height else 1.0
    k[0, :] *= scale_x / bin_x
    k[1, :] *= scale_y / bin_y
    p[0, :] *= scale_x / bin_x
    p[1, :] *= scale_y / bin_y
    if not valid_intrinsics(k[0, 0], k[1, 1], k[0, 2], k[1, 2]):
        raise ValueError(f"camera_info has unusable intrinsics K={[float(v) for v in info.k]}")
    out = CameraInfo()
    out.header = header
    out.height, out.width = int(height), int(width)
    out.distortion_model = info.distortion_model
    out.d = list(info.d)  # distortion acts on normalized coordinates: unchanged
    out.r = list(info.r)
    out.k = k.ravel().tolist()
    out.p = p.ravel().tolist()
    out.binning_x = out.binning_y = 0
    out.roi = RegionOfInterest()
    return out
