"""The navigation cloud (nav_cloud.py): stride decimation keeps exact points of the
pixels it keeps and cuts bytes by stride^2; voxel thinning keeps one exact point per
occupied voxel; max_range / max_uncertainty still apply. In-process (numpy only); the
node publishing it over DDS is in test_node_focal_cloud.py."""
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from textdepth_ros.data.generate import make_room, render_room
from textdepth_ros.ros.nav_cloud import node_cloud
from textdepth_ros.ros.pointcloud import backproject, depth_to_pointcloud2, pointcloud2_to_array

H, W = 480, 640
K = (518.8579, 519.4696, 325.5824, 253.7362)  # NYU's Kinect: fx != fy, a non-integer principal point


def info() -> CameraInfo:
    msg = CameraInfo(height=H, width=W)
    msg.k = [K[0], 0.0, K[2], 0.0, K[1], K[3], 0.0, 0.0, 1.0]
    return msg


@pytest.fixture(scope="module")
def room():
    """A generated room at 640x480: depth 0.5-10 m with NaN holes, its uncertainty and colour."""
    rng = np.random.default_rng(0)
    rgb, depth = render_room(rng, make_room(rng, "office"), H, W)
    depth = np.where(depth > 0, depth, np.float32(np.nan)).astype(np.float32)
    uncertainty = (0.05 * depth).astype(np.float32)
    return depth, uncertainty, rgb


def params(**changes) -> dict:
    return dict({"cloud_stride": 1, "cloud_voxel": 0.0, "cloud_rgb": True, "max_range": 0.0, "max_uncertainty": 0.0},
                **changes)


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_a_strided_cloud_is_the_full_clouds_points_at_the_kept_pixels(room, stride):
    depth, uncertainty, rgb = room
    full = node_cloud(depth, uncertainty, info(), Header(), rgb, params())
    cloud = node_cloud(depth, uncertainty, info(), Header(), rgb, params(cloud_stride=stride))
    assert (cloud.height, cloud.width, cloud.point_step) == (H // stride, W // stride, full.point_step)
    assert len(full.data) == len(cloud.data) * stride ** 2  # stride 4: 16x fewer bytes
    kept, every = pointcloud2_to_array(cloud), pointcloud2_to_array(full)[::stride, ::stride]
    for name in ("x", "y", "z", "rgb"):
        np.testing.assert_array_equal(kept[name].view(np.uint32), every[name].view(np.uint32), err_msg=name)
    x, y, z = backproject(depth, *K)  # the documented formula at the kept pixels, bit for bit
    np.testing.assert_array_equal(kept["x"], x[::stride, ::stride])
    np.testing.assert_array_equal(kept["y"], y[::stride, ::stride])


def test_odd_sizes_keep_the_last_partial_row_and_column():
    depth = np.arange(1, 1 + 7 * 10, dtype=np.float32).reshape(7, 10)
    cloud = depth_to_pointcloud2(depth[::3, ::3], (5.0, 6.0, 4.5, 3.0), None, stride=3)
    assert (cloud.height, cloud.width) == (3, 4)  # rows 0, 3, 6; columns 0, 3, 6, 9
    x, y, z = backproject(depth, 5.0, 6.0, 4.5, 3.0)
    np.testing.assert_array_equal(pointcloud2_to_array(cloud)["x"], x[::3, ::3])
    np.testing.assert_array_equal(pointcloud2_to_array(cloud)["y"], y[::3, ::3])
    with pytest.raises(ValueError, match="stride"):
        depth_to_pointcloud2(depth, (5.0, 6.0, 4.5, 3.0), None, stride=0)


def test_cuts_apply_to_the_kept_pixels(room):
    depth, uncertainty, rgb = room
    cloud = node_cloud(depth, uncertainty, info(), Header(), rgb, params(cloud_stride=4, max_range=4.0,
                                                                         max_uncertainty=0.15))
    z, kept = pointcloud2_to_array(cloud)["z"], depth[::4, ::4]
    cut = ~((kept <= 4.0) & (uncertainty[::4, ::4] <= 0.15))
    assert cut.any() and (~cut).any()
    assert np.isnan(z[cut]).all()
    np.testing.assert_array_equal(z[~cut], kept[~cut])


def test_voxel_thinning_keeps_one_exact_point_per_occupied_voxel(room):
    depth, uncertainty, rgb = room
    leaf = 0.05
    strided = pointcloud2_to_array(node_cloud(depth, uncertainty, info(), Header(), rgb, params(cloud_stride=4)))
    cloud = node_cloud(depth, uncertainty, info(), Header(), rgb, params(cloud_stride=4, cloud_voxel=leaf))
    assert cloud.height == 1 and cloud.is_dense and cloud.row_step == cloud.width * cloud.point_step
    thinned = np.frombuffer(cloud.data, dtype=strided.dtype)
    valid = strided[np.isfinite(strided["z"])]  # row-major order

    def cells(points):
        return [tuple(c) for c in np.floor(np.stack([points["x"], points["y"], points["z"]], 1) / np.float32(leaf))]

    assert len(thinned) == len(set(cells(thinned))) == len(set(cells(valid)))  # one point per voxel, every voxel
    assert len(thinned) < len(valid) / 1.5
    first = {}  # each kept point is its voxel's first pixel's own point, not a centroid
    for cell, row in zip(cells(valid), valid):
        first.setdefault(cell, row.tobytes())
    assert [row.tobytes() for row in thinned] == list(first.values())  # in pixel order
