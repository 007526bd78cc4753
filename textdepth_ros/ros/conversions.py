"""sensor_msgs/Image <-> numpy, vectorized, byte layout exactly as sensor_msgs defines it
(row `step` may be padded, `is_bigendian` says the byte order of multi-byte channels).

No cv_bridge: the ROS 2 one is not on PyPI and the PyPI one is ROS 1's.
"""
import sys

import numpy as np
from sensor_msgs.msg import Image

# encoding -> (numpy dtype, channels); same table as sensor_msgs/image_encodings.hpp
ENCODINGS = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3),
    "rgb16": (np.uint16, 3), "bgr16": (np.uint16, 3), "rgba16": (np.uint16, 4), "bgra16": (np.uint16, 4),
    "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1), "64FC1": (np.float64, 1), "32SC1": (np.int32, 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC3", "rgb16", "bgr16", "rgba16", "bgra16", "mono16")
_HOST_BIG_ENDIAN = sys.byteorder == "big"


def _layout(encoding: str):
    try:
        dtype, channels = ENCODINGS[encoding]
    except KeyError:
        raise ValueError(f"unsupported image encoding '{encoding}' (supported: {', '.join(ENCODINGS)})") from None
    return np.dtype(dtype), channels


def image_to_numpy(msg) -> np.ndarray:
    """Image -> HxW (one channel) or HxWxC array in the encoding's dtype and native byte order.

    Zero-copy where the layout allows (a read-only view of msg.data)."""
    dtype, channels = _layout(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    if height == 0 or width == 0:
        raise ValueError(f"empty image ({width}x{height})")
    if step < row_bytes:
        raise ValueError(f"step {step} is smaller than width*channels*bytes = {row_bytes} ({msg.encoding} {width}x{height})")
    buffer = msg.data if isinstance(msg.data, (bytes, bytearray)) else memoryview(msg.data).cast("B")
    if len(buffer) < step * (height - 1) + row_bytes:
        raise ValueError(f"data has {len(buffer)} bytes, {msg.encoding} {width}x{height} with step {step} needs {step * height}")
    order = ">" if msg.is_bigendian else "<"
    rows = np.frombuffer(buffer, np.uint8, count=step * (height - 1) + row_bytes)
    # Strided view: each row starts at a multiple of step; padding is skipped without copying.
    array = _rows_view(rows, height, width * channels, step, dtype.newbyteorder(order))
    if dtype.itemsize > 1 and bool(msg.is_bigendian) != _HOST_BIG_ENDIAN:
        array = array.astype(dtype)  # swap to native order (copies)
    return array.reshape(height, width) if channels == 1 else array.reshape(height, width, channels)


def _rows_view(raw: np.ndarray, height: int, row_items: int, step: int, dtype: np.dtype) -> np.ndarray:
    """HxN view of `row_items` items per row at `step` bytes apart, padding skipped."""
    return np.ndarray(shape=(height, row_items), dtype=dtype, buffer=raw, offset=0, strides=(step, dtype.itemsize))


def numpy_to_image(array: np.ndarray, encoding: str, header=None) -> Image:
    """HxW or HxWxC array -> Image (dense rows, native byte order), data via tobytes (fast)."""
    dtype, channels = _layout(encoding)
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != channels:
        raise ValueError(f"{encoding} needs {channels} channel(s), got an array of shape {array.shape}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_HOST_BIG_ENDIAN)
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = np.ascontiguousarray(array, dtype=dtype).tobytes()
    return msg


def to_rgb8(msg) -> np.ndarray:
    """A colour or mono Image -> HxWx3 uint8 RGB (what the model takes)."""
    _layout(msg.encoding)  # unknown encodings get the "unsupported" message
    if msg.encoding not in COLOR_ENCODINGS:
        raise ValueError(f"image encoding '{msg.encoding}' is not a colour encoding (use one of {', '.join(COLOR_ENCODINGS)})")
    array = image_to_numpy(msg)
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)  # keep the high byte
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if msg.encoding.startswith("bgr"):
        array = array[:, :, 2::-1]
    return np.ascontiguousarray(array[:, :, :3])
