"""Depth + pinhole intrinsics -> organized sensor_msgs/PointCloud2 (REP 117/118).

x = (u - cx) z / fx, y = (v - cy) z / fy, z = depth, in the camera optical frame.
Fields x, y, z float32 (+ rgb: 0x00RRGGBB packed into a float32, as PCL and RViz read it);
invalid pixels are NaN points, so the cloud keeps its height x width and is_dense is False.
"""
import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

XYZ_DTYPE = np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3, "offsets": [0, 4, 8], "itemsize": 16})
XYZRGB_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4"] * 4, "offsets": [0, 4, 8, 12], "itemsize": 16})


def backproject(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float):
    """float32 HxW depth -> (x, y, z) float32 HxW arrays; NaN, inf or <= 0 depth gives NaN points."""
    depth = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan))
    height, width = depth.shape
    u = np.arange(width, dtype=np.float32)
    v = np.arange(height, dtype=np.float32)
    # Same float32 operations in the same order as the documented formula, so a
    # consumer recomputing it gets identical bits.
    x = (u[None, :] - np.float32(cx)) * depth / np.float32(fx)
    y = (v[:, None] - np.float32(cy)) * depth / np.float32(fy)
    return x.astype(np.float32, copy=False), y.astype(np.float32, copy=False), depth


def valid_intrinsics(fx, fy, cx, cy) -> bool:
    values = np.array([fx, fy, cx, cy], dtype=np.float64)
    return bool(np.all(np.isfinite(values)) and fx > 0 and fy > 0)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> HxW float32 whose bits are 0x00RRGGBB."""
    rgb = rgb.astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return packed.astype("<u4").view("<f4")


def depth_to_pointcloud2(depth: np.ndarray, K, header, rgb: np.ndarray = None) -> PointCloud2:
    """Organized cloud (height x width) from depth and K = (fx, fy, cx, cy)."""
    fx, fy, cx, cy = (float(k) for k in K)
    if not valid_intrinsics(fx, fy, cx, cy):
        raise ValueError(f"invalid intrinsics fx={fx} fy={fy} cx={cx} cy={cy}")
    x, y, z = backproject(depth, fx, fy, cx, cy)
    height, width = z.shape
    dtype = XYZRGB_DTYPE if rgb is not None else XYZ_DTYPE
    points = np.zeros((height, width), dtype=dtype)  # padding bytes stay zero
    points["x"], points["y"], points["z"] = x, y, z
    if rgb is not None:
        if rgb.shape[:2] != (height, width):
            raise ValueError(f"rgb {rgb.shape[:2]} does not match depth {(height, width)}")
        points["rgb"] = pack_rgb(rgb)
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = height, width
    msg.fields = [PointField(name=name, offset=dtype.fields[name][1], datatype=PointField.FLOAT32, count=1)
                  for name in dtype.names]
    msg.is_bigendian = False  # the dtype is explicitly little endian
    msg.point_step = dtype.itemsize
    msg.row_step = dtype.itemsize * width
    msg.is_dense = False
    msg.data = points.tobytes()
    return msg


def pointcloud2_to_array(msg: PointCloud2) -> np.ndarray:
    """Organized PointCloud2 of float32 fields -> HxW structured array (for tests and tools)."""
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": [f.name for f in msg.fields], "formats": [order + "f4"] * len(msg.fields),
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    flat = np.frombuffer(msg.data, dtype=np.uint8)
    return np.ndarray((msg.height, msg.width), dtype=dtype, buffer=flat, strides=(msg.row_step, msg.point_step))
