"""Organized PointCloud2 packing: layout as sensor_msgs defines it, values = back-projection."""
import numpy as np
import pytest
from sensor_msgs.msg import PointField
from std_msgs.msg import Header

from textdepth_ros.ros.pointcloud import backproject, depth_to_pointcloud2, pointcloud2_to_array


def test_backproject_matches_the_pinhole_formula():
    depth = np.array([[1.0, 2.0, 3.0], [4.0, np.nan, 0.0]], np.float32)
    x, y, z = backproject(depth, 2.0, 4.0, 1.0, 0.5)
    assert x[0, 2] == np.float32((2 - 1.0) * 3.0 / 2.0)
    assert y[1, 0] == np.float32((1 - 0.5) * 4.0 / 4.0)
    assert z[1, 0] == 4.0
    assert np.isnan(x[1, 1]) and np.isnan(z[1, 2])  # NaN and zero depth are invalid


def test_cloud_layout_and_values():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 5, (6, 8)).astype(np.float32)
    depth[2, 3] = np.nan
    rgb = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    header = Header(frame_id="camera_optical")
    msg = depth_to_pointcloud2(depth, (5.0, 6.0, 3.5, 2.5), header, rgb=rgb)
    assert (msg.height, msg.width, msg.is_dense, msg.is_bigendian) == (6, 8, False, False)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1), ("rgb", 12, PointField.FLOAT32, 1)]
    assert msg.point_step == 16 and msg.row_step == 16 * 8 and len(msg.data) == 16 * 8 * 6
    assert msg.header.frame_id == "camera_optical"
    points = pointcloud2_to_array(msg)
    x, y, z = backproject(depth, 5.0, 6.0, 3.5, 2.5)
    np.testing.assert_array_equal(points["x"], x)
    np.testing.assert_array_equal(points["y"], y)
    np.testing.assert_array_equal(points["z"], z)
    assert np.isnan(points["x"][2, 3]) and np.isnan(points["z"][2, 3])
    packed = points["rgb"].view(np.uint32)
    assert packed[1, 2] == (int(rgb[1, 2, 0]) << 16 | int(rgb[1, 2, 1]) << 8 | int(rgb[1, 2, 2]))


def test_xyz_cloud_without_colour():
    msg = depth_to_pointcloud2(np.ones((2, 3), np.float32), (1, 1, 1, 1), None)
    assert [f.name for f in msg.fields] == ["x", "y", "z"] and msg.point_step == 16


@pytest.mark.parametrize("K", [(0, 1, 1, 1), (1, np.nan, 1, 1), (1, 1, np.inf, 1), (-1, 1, 1, 1)])
def test_bad_intrinsics_raise(K):
    with pytest.raises(ValueError, match="intrinsics"):
        depth_to_pointcloud2(np.ones((2, 3), np.float32), K, None)
