"""The intrinsics of the received image (camera_info.py) against values computed by
hand, and against image_geometry's PinholeCameraModel as its documentation and
source define it (the reduction depth_image_proc relies on): the published
depth/camera_info must give a PinholeCameraModel user the same fx, fy, cx, cy, Tx
as the camera's own CameraInfo gives for the image it came with."""
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, RegionOfInterest
from std_msgs.msg import Header

from textdepth_ros.ros.camera_info import image_camera_info


def calibration(height=192, width=256, f=200.0, tx=0.0, roi=None, binning=(0, 0)) -> CameraInfo:
    info = CameraInfo()
    info.height, info.width = height, width
    cx, cy = (width - 1) / 2, (height - 1) / 2  # 127.5, 95.5
    info.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, cx, tx, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.d = [0.1, -0.05, 0.0, 0.0, 0.0]
    info.distortion_model = "plumb_bob"
    info.binning_x, info.binning_y = binning
    if roi is not None:
        info.roi = RegionOfInterest(x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3])
    return info


def pinhole_model(info: CameraInfo) -> dict:
    """image_geometry.PinholeCameraModel.fromCameraInfo, its documented semantics: an
    all-zero roi is the full resolution; K and P move by the roi offset, then fx, fy,
    cx, cy and P's translations divide by the binning (0 counts as 1); the image the
    model describes is roi / binning in size."""
    roi = info.roi
    if (roi.x_offset, roi.y_offset, roi.width, roi.height) == (0, 0, 0, 0):
        x0, y0, rw, rh = 0, 0, info.width, info.height
    else:
        x0, y0, rw, rh = roi.x_offset, roi.y_offset, roi.width, roi.height
    bx, by = max(1, info.binning_x), max(1, info.binning_y)
    p = np.array(info.p, dtype=np.float64).reshape(3, 4)
    return {"fx": p[0, 0] / bx, "fy": p[1, 1] / by, "cx": (p[0, 2] - x0) / bx, "cy": (p[1, 2] - y0) / by,
            "Tx": p[0, 3] / bx, "size": (rh // by, rw // bx)}


def described(info: CameraInfo) -> dict:
    k = info.k
    return {"fx": k[0], "fy": k[4], "cx": k[2], "cy": k[5]}


def test_roi_moves_the_principal_point_and_keeps_the_focal_length():
    """The issue's case: a 96x128 ROI at (64, 48) of a 192x256 calibration, f = 200."""
    out = image_camera_info(calibration(roi=(64, 48, 128, 96)), Header(), 96, 128)
    assert described(out) == {"fx": 200.0, "fy": 200.0, "cx": 63.5, "cy": 47.5}
    assert out.p[0] == 200.0 and out.p[2] == 63.5 and out.p[6] == 47.5
    assert (out.height, out.width) == (96, 128)


def test_binning_divides_focal_length_and_principal_point():
    out = image_camera_info(calibration(binning=(2, 2), tx=-20.0), Header(), 96, 128)
    assert described(out) == {"fx": 100.0, "fy": 100.0, "cx": 63.75, "cy": 47.75}
    assert out.p[3] == -10.0  # Tx = -fx * baseline scales with fx


def test_roi_then_binning():
    out = image_camera_info(calibration(roi=(64, 48, 128, 96), binning=(2, 4)), Header(), 24, 64)
    assert described(out) == {"fx": 100.0, "fy": 50.0, "cx": 31.75, "cy": 11.875}


def test_a_resized_image_scales_like_image_proc_resize():
    """No roi, image at half the calibration size: image_proc's resize node scales
    fx, cx (and fy, cy) by the size ratio."""
    out = image_camera_info(calibration(), Header(), 96, 128)
    assert described(out) == {"fx": 100.0, "fy": 100.0, "cx": 63.75, "cy": 47.75}


def test_an_roi_image_resized_scales_from_the_roi_size():
    out = image_camera_info(calibration(roi=(64, 48, 128, 96)), Header(), 48, 64)  # the ROI at half size
    assert described(out) == {"fx": 100.0, "fy": 100.0, "cx": 31.75, "cy": 23.75}


@pytest.mark.parametrize("roi,binning", [(None, (0, 0)), (None, (1, 1)), ((64, 48, 128, 96), (0, 0)),
                                         ((10, 20, 200, 100), (2, 2)), ((0, 0, 256, 96), (1, 3))])
def test_published_info_means_to_image_geometry_what_the_camera_info_means(roi, binning):
    """A PinholeCameraModel built from our depth/camera_info (depth_image_proc's view)
    equals one built from the camera's CameraInfo, for the image that came with it."""
    camera = calibration(roi=roi, binning=binning, tx=-12.0)
    expected = pinhole_model(camera)
    height, width = expected["size"]
    out = image_camera_info(camera, Header(frame_id="cam"), height, width)
    ours = pinhole_model(out)
    assert ours["size"] == (height, width) == (out.height, out.width)
    for key in ("fx", "fy", "cx", "cy", "Tx"):
        assert ours[key] == pytest.approx(expected[key], abs=1e-12), key
    assert described(out) == {k: pytest.approx(expected[k], abs=1e-12) for k in ("fx", "fy", "cx", "cy")}
    # What depth_image_proc's point_cloud_xyz does with a pixel: the ray (u - cx) / fx.
    assert (100 - ours["cx"]) / ours["fx"] == pytest.approx((100 - expected["cx"]) / expected["fx"])
    assert out.d == camera.d and out.distortion_model == "plumb_bob" and out.header.frame_id == "cam"
    assert (out.binning_x, out.binning_y) == (0, 0) and out.roi == RegionOfInterest()


@pytest.mark.parametrize("roi,why", [((200, 0, 128, 96), "does not fit"), ((0, 0, 128, 0), "is empty")])
def test_an_impossible_roi_is_refused(roi, why):
    with pytest.raises(ValueError, match=why):
        image_camera_info(calibration(roi=roi), Header(), 96, 128)


def test_unusable_focal_lengths_are_refused():
    info = calibration()
    info.k = [0.0] * 9
    with pytest.raises(ValueError, match="unusable intrinsics"):
        image_camera_info(info, Header(), 192, 256)
