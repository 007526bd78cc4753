"""The cloud the node publishes on `points`: the range and uncertainty cuts, and the
decimation navigation wants.

nav2's obstacle and voxel layers and octomap want a few thousand points per frame, not
an organized 640x480 cloud (307,200 points, 4.9 MB). `cloud_stride` s keeps every s-th
pixel in both directions (image[::s, ::s]: rows and columns 0, s, 2s, ...), still an
organized cloud (ceil(H/s) x ceil(W/s)) whose every point is its pixel back-projected
with the published K, bit for bit the full cloud's point there. Stride 4 at 640x480:
160x120 = 19,200 points, 16x fewer bytes. The cuts (max_range, max_uncertainty) apply to
the kept pixels only, so a decimated cloud also costs less to build
(bench/pointcloud_bench.py, docs/navigation.md).

`cloud_voxel` v > 0 then thins it to one point per v-metre voxel: an unorganized cloud
(height 1, invalid points dropped, is_dense true) of the first kept pixel, in row-major
order, of every occupied voxel, so each point is still an exact pixel back-projection.
Image-space decimation leaves near surfaces dense and far ones sparse; a voxel grid
evens that out to what a costmap of that resolution can use (in generated rooms at
640x480, stride 4 then 5 cm voxels: 19k -> 3k-13k points, docs/navigation.md).
"""
import numpy as np
from sensor_msgs.msg import PointCloud2

from textdepth_ros.ros.pointcloud import depth_to_pointcloud2

VOXEL_KEY_BITS = 21  # per axis: +-2^20 voxels (+-10 km at 1 cm), three of them in one int64


def node_cloud(depth, uncertainty, info, header, rgb, params):
    """PointCloud2 for `points`. `depth` is already NaN wherever it is invalid; the cuts
    make one masked copy only when they are on and cut something."""
    stride = int(params["cloud_stride"])
    if stride > 1:  # views: only the kept pixels are read from here on
        depth, uncertainty, rgb = depth[::stride, ::stride], uncertainty[::stride, ::stride], rgb[::stride, ::stride]
    cut = None
    with np.errstate(invalid="ignore"):
        if params["max_range"] > 0:
            cut = ~(depth <= np.float32(params["max_range"]))
        if params["max_uncertainty"] > 0:
            too_uncertain = ~(uncertainty <= np.float32(params["max_uncertainty"]))
            cut = too_uncertain if cut is None else cut | too_uncertain
    if cut is not None and cut.any():
        depth = depth.copy()
        np.copyto(depth, np.float32(np.nan), where=cut)
    k = info.k
    cloud = depth_to_pointcloud2(depth, (k[0], k[4], k[2], k[5]), header, rgb if params["cloud_rgb"] else None,
                                 stride=stride)
    return voxel_thinned(cloud, params["cloud_voxel"]) if params["cloud_voxel"] > 0 else cloud


def voxel_thinned(cloud: PointCloud2, leaf: float) -> PointCloud2:
    """One point per `leaf`-metre voxel of an organized float32 cloud from
    depth_to_pointcloud2 (x, y, z first, point_step 16): the first valid point of each
    occupied voxel in row-major order, unchanged; unorganized, invalid points dropped."""
    points = np.frombuffer(cloud.data, dtype="<f4").reshape(-1, cloud.point_step // 4)
    points = points[np.isfinite(points[:, 2])]
    half = 1 << (VOXEL_KEY_BITS - 1)
    cells = np.clip(np.floor(points[:, :3] / np.float32(leaf)), -half, half - 1).astype(np.int64) + half
    keys = (cells[:, 0] << (2 * VOXEL_KEY_BITS)) | (cells[:, 1] << VOXEL_KEY_BITS) | cells[:, 2]
    first = np.sort(np.unique(keys, return_index=True)[1])  # first occurrence per voxel, in pixel order
    out = PointCloud2(header=cloud.header, height=1, width=len(first), fields=cloud.fields,
                      is_bigendian=cloud.is_bigendian, point_step=cloud.point_step,
                      row_step=cloud.point_step * len(first), is_dense=True)
    out.data = points[first].tobytes()
    return out
