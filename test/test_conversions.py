"""Image <-> numpy: every supported encoding, step padding, byte order, bad input."""
import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from textdepth_ros.ros.conversions import ENCODINGS, image_to_numpy, numpy_to_image, to_rgb8


def make_array(encoding, height=5, width=7, seed=0):
    dtype, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding):
    array = make_array(encoding)
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = numpy_to_image(array, encoding, header)
    assert (msg.height, msg.width, msg.encoding, msg.header.frame_id) == (5, 7, encoding, "cam")
    assert msg.step == 7 * array.itemsize * (array.shape[2] if array.ndim == 3 else 1)
    back = image_to_numpy(msg)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def padded_message(array, encoding, pad_bytes, big_endian=False):
    """What a driver with row alignment (and maybe a big-endian host) would send."""
    height, width = array.shape[:2]
    order = ">" if big_endian else "<"
    rows = array.astype(array.dtype.newbyteorder(order)).reshape(height, -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((height, pad_bytes), 0xAB, np.uint8)], axis=1)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big_endian))
    msg.step = padded.shape[1]
    msg.data = padded.tobytes()
    return msg


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "16UC1", "32FC1", "bgra8"])
def test_step_padding_is_skipped(encoding):
    array = make_array(encoding, 4, 6)
    np.testing.assert_array_equal(image_to_numpy(padded_message(array, encoding, pad_bytes=12)), array)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1", "mono16"])
def test_big_endian_data_is_swapped(encoding):
    array = make_array(encoding, 3, 5)
    back = image_to_numpy(padded_message(array, encoding, pad_bytes=4, big_endian=True))
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_to_rgb8_handles_channel_orders():
    rgb = make_array("rgb8", 4, 6)
    rgba = np.concatenate([rgb, np.full((4, 6, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(to_rgb8(numpy_to_image(rgb, "rgb8")), rgb)
    np.testing.assert_array_equal(to_rgb8(numpy_to_image(rgb[:, :, ::-1], "bgr8")), rgb)
    np.testing.assert_array_equal(to_rgb8(numpy_to_image(rgba, "rgba8")), rgb)
    np.testing.assert_array_equal(to_rgb8(numpy_to_image(rgba[:, :, [2, 1, 0, 3]], "bgra8")), rgb)
    mono = rgb[:, :, 0]
    np.testing.assert_array_equal(to_rgb8(numpy_to_image(mono, "mono8")), np.repeat(mono[:, :, None], 3, 2))
    wide = rgb.astype(np.uint16) * 257
    np.testing.assert_array_equal(to_rgb8(numpy_to_image(wide, "rgb16")), rgb)
    out = to_rgb8(numpy_to_image(rgb, "rgb8"))
    assert out.dtype == np.uint8 and out.flags.c_contiguous


def test_unknown_encoding_and_size_mismatch_are_clear_errors():
    msg = numpy_to_image(make_array("rgb8"), "rgb8")
    msg.encoding = "yuv422_yuy2_fancy"
    with pytest.raises(ValueError, match="unsupported image encoding 'yuv422_yuy2_fancy'"):
        image_to_numpy(msg)
    msg = numpy_to_image(make_array("rgb8"), "rgb8")
    msg.height = 50  # claims more rows than the data has
    with pytest.raises(ValueError, match="needs"):
        image_to_numpy(msg)
    msg = numpy_to_image(make_array("rgb8"), "rgb8")
    msg.step = 3  # shorter than a row
    with pytest.raises(ValueError, match="step"):
        image_to_numpy(msg)
    with pytest.raises(ValueError, match="empty"):
        image_to_numpy(Image(encoding="rgb8"))
    with pytest.raises(ValueError, match="not a colour encoding"):
        to_rgb8(numpy_to_image(make_array("32FC1"), "32FC1"))
    with pytest.raises(ValueError, match="channel"):
        numpy_to_image(np.zeros((4, 4, 3), np.uint8), "mono8")
