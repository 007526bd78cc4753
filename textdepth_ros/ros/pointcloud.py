"""Depth + pinhole intrinsics -> organized sensor_msgs/PointCloud2 (REP 117/118).

x = (u - cx) z / fx, y = (v - cy) z / fy, z = depth, in the camera optical frame.
Fields x, y, z float32 (+ rgb: 0x00RRGGBB packed into a float32, as PCL and RViz read it);
invalid pixels are NaN points, so the cloud keeps its height x width and is_dense is False.
"""
import array
import threading

import cv2
import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

XYZ_DTYPE = np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3, "offsets": [0, 4, 8], "itemsize": 16})
XYZRGB_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4"] * 4, "offsets": [0, 4, 8, 12], "itemsize": 16})


def invalid_to_nan(depth: np.ndarray) -> np.ndarray:
    """float32 depth with NaN wherever it is not finite or not > 0 (REP 117: NaN = invalid)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan))


def backproject(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float):
    """float32 HxW depth -> (x, y, z) float32 HxW arrays; NaN, inf or <= 0 depth gives NaN points."""
    depth = invalid_to_nan(np.asarray(depth, dtype=np.float32))
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


class _Scratch(threading.local):
    """Per-thread planes reused across calls of the same size (no page faults, no
    allocator churn per frame): x, y, packed rgb, and an all-zero padding plane."""

    def planes(self, height: int, width: int):
        if getattr(self, "shape", None) != (height, width):
            self.shape = (height, width)
            self.x = np.empty((height, width), np.float32)
            self.y = np.empty((height, width), np.float32)
            self.bgra = np.empty((height, width, 4), np.uint8)
            self.zeros = np.zeros((height, width), np.float32)
        return self.x, self.y, self.bgra, self.zeros


_scratch = _Scratch()


def nan_is_the_only_invalid(depth: np.ndarray) -> bool:
    """True when every pixel is NaN or a finite depth > 0: NaN then propagates through
    the back-projection by itself and no sanitized copy is needed (two fast reductions)."""
    if depth.size == 0:
        return True
    with np.errstate(invalid="ignore"):
        lo = np.fmin.reduce(depth, axis=None)  # fmin/fmax skip NaN
        hi = np.fmax.reduce(depth, axis=None)
    return bool(np.isnan(lo) or (lo > 0 and hi < np.inf))


def depth_to_pointcloud2(depth: np.ndarray, K, header, rgb: np.ndarray = None, stride: int = 1) -> PointCloud2:
    """Organized cloud (height x width) from depth and K = (fx, fy, cx, cy).

    `stride` > 1: `depth` (and `rgb`) hold every stride-th pixel of the image K describes,
    image[::stride, ::stride] (a decimated cloud): point (i, j) is pixel (u, v) =
    (stride j, stride i) back-projected with K itself, so it equals the full cloud's
    point there bit for bit.

    Same values as `backproject` bit for bit (same float32 operations in the same
    order). x and y are computed contiguously with ufunc `out=` into reused per-thread
    planes, rgb is packed by one cv2 colour conversion, and one cv2.merge interleaves
    x, y, z, rgb straight into the message's own data buffer: no structured array,
    no np.where copy of valid depth, no second copy of 5 MB into msg.data."""
    fx, fy, cx, cy = (float(k) for k in K)
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride}")
    stride = int(stride)
    if not valid_intrinsics(fx, fy, cx, cy):
        raise ValueError(f"invalid intrinsics fx={fx} fy={fy} cx={cx} cy={cy}")
    z = np.ascontiguousarray(depth, dtype=np.float32)
    if z.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {z.shape}")
    if not nan_is_the_only_invalid(z):
        z = invalid_to_nan(z)
    height, width = z.shape
    if rgb is not None and rgb.shape[:2] != (height, width):
        raise ValueError(f"rgb {rgb.shape[:2]} does not match depth {(height, width)}")
    x, y, bgra, zeros = _scratch.planes(height, width)
    u = np.arange(0, width * stride, stride, dtype=np.float32)  # the kept pixels' columns and rows
    v = np.arange(0, height * stride, stride, dtype=np.float32)
    np.multiply((u - np.float32(cx))[None, :], z, out=x)  # (u - cx) * z
    np.divide(x, np.float32(fx), out=x)  # ... / fx
    np.multiply((v - np.float32(cy))[:, None], z, out=y)
    np.divide(y, np.float32(fy), out=y)
    if rgb is not None:
        fourth = _packed_rgb(rgb, bgra)
        dtype = XYZRGB_DTYPE
    else:
        fourth = zeros  # padding bytes stay zero
        dtype = XYZ_DTYPE
    data = array.array("B", [0]) * (height * width * dtype.itemsize)  # the message's own buffer
    points = np.frombuffer(data, dtype="<f4").reshape(height, width, 4)
    merged = cv2.merge([x, y, z, fourth], points)
    if not np.shares_memory(merged, points):  # cv2 allocated elsewhere: copy it in
        points[...] = merged
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
    _set_data(msg, data)
    return msg


def _packed_rgb(rgb: np.ndarray, bgra: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW float32 plane whose bits are 0x00RRGGBB (little endian bytes
    B, G, R, 0), written into the scratch `bgra`."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        rgb = np.ascontiguousarray(np.broadcast_to(rgb[..., None] if rgb.ndim == 2 else rgb[..., :3],
                                                   rgb.shape[:2] + (3,)), dtype=np.uint8)
    cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGRA, dst=bgra)
    words = bgra.view(np.uint32)[..., 0]
    np.bitwise_and(words, np.uint32(0x00FFFFFF), out=words)  # alpha byte -> 0
    return words.view(np.float32)


def _set_data(msg: PointCloud2, data: array.array) -> None:
    """msg.data = data without the setter's extra 5 MB copy (with field checks off it
    rebuilds an array('B') from any value; with them on it keeps an array('B') as is)."""
    if getattr(msg, "_check_fields", True) or not hasattr(msg, "_data"):
        msg.data = data
    else:
        msg._data = data


def pointcloud2_to_array(msg: PointCloud2) -> np.ndarray:
    """Organized PointCloud2 of float32 fields -> HxW structured array (for tests and tools)."""
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": [f.name for f in msg.fields], "formats": [order + "f4"] * len(msg.fields),
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    flat = np.frombuffer(msg.data, dtype=np.uint8)
    return np.ndarray((msg.height, msg.width), dtype=dtype, buffer=flat, strides=(msg.row_step, msg.point_step))
