"""sensor_msgs/CompressedImage <-> numpy, as image_transport's `compressed` and
`compressedDepth` plugins write them (robots usually record these, not raw images).

compressed:       `format` "jpeg" / "png", or image_transport's "rgb8; jpeg compressed
                  bgr8"; `data` is the encoded file (colour in BGR order, as OpenCV writes).
compressedDepth:  `format` "16UC1; compressedDepth png" (or "... compressedDepth" from
                  older versions); `data` = a 12-byte header (int32 format, float32
                  depthQuantA, float32 depthQuantB) + a 16-bit PNG: the raw 16UC1 depth,
                  or for 32FC1 the quantized inverse depth v = A / depth + B (0 = no
                  reading), so depth = A / (v - B). The "rvl" codec is not read here.
"""
import struct

import cv2
import numpy as np

HEADER = struct.Struct("<iff")  # compressed_depth_image_transport's ConfigHeader
COLOR_CODECS = ("jpeg", "png")
DEPTH_QUANTIZATION, DEPTH_MAX = 100.0, 10.0  # compressed_depth_image_transport's defaults


def is_compressed(msg) -> bool:
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def color_codec(fmt: str) -> str:
    """'jpeg' or 'png' from a CompressedImage format string; ValueError otherwise."""
    text = fmt.lower()
    if "compresseddepth" in text:
        raise ValueError(f"format '{fmt}' is a depth transport, not a colour image")
    for codec, names in (("jpeg", ("jpeg", "jpg")), ("png", ("png",))):
        if any(name in text for name in names):
            return codec
    raise ValueError(f"unsupported compressed image format '{fmt}' (supported: jpeg, png)")


def compressed_to_rgb8(msg) -> np.ndarray:
    """A compressed colour or mono image -> HxWx3 uint8 RGB. ValueError if unreadable."""
    color_codec(msg.format)
    data = np.frombuffer(bytes(msg.data), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"compressed image ({msg.format}, {data.size} bytes) could not be decoded")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def compressed_size(msg):
    """(height, width) a compressed image's file header claims, read without decoding its
    pixels (so a size limit is checked first); None when the header is unreadable (the
    decode then says why)."""
    import io

    from textdepth_ros.image_limits import header_size

    return header_size(io.BytesIO(bytes(msg.data)))


def any_to_rgb8(msg) -> np.ndarray:
    """Image or CompressedImage -> HxWx3 uint8 RGB (what the model takes)."""
    from textdepth_ros.ros.conversions import to_rgb8

    return compressed_to_rgb8(msg) if is_compressed(msg) else to_rgb8(msg)


def encode_color(rgb: np.ndarray, codec: str = "jpeg", quality: int = 95) -> tuple:
    """HxWx3 uint8 RGB -> (format, bytes) as image_transport's compressed publisher writes it."""
    if codec not in COLOR_CODECS:
        raise ValueError(f"codec must be one of {', '.join(COLOR_CODECS)}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, data = cv2.imencode("." + ("jpg" if codec == "jpeg" else "png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"could not encode a {rgb.shape} image as {codec}")
    return f"rgb8; {codec} compressed bgr8", data.tobytes()


# ------------------------------------------------------------------- compressedDepth
def depth_encoding(fmt: str) -> str:
    """'16UC1' or '32FC1' from a compressedDepth format string; ValueError otherwise."""
    encoding, _, rest = fmt.partition(";")
    encoding, rest = encoding.strip(), rest.strip().lower()
    if not rest.startswith("compresseddepth"):
        raise ValueError(f"format '{fmt}' is not a compressedDepth image")
    if "rvl" in rest:
        raise ValueError(f"compressedDepth codec rvl ('{fmt}') is not supported: record with the png codec")
    if encoding not in ("16UC1", "32FC1"):
        raise ValueError(f"compressedDepth of encoding '{encoding}' is not supported (16UC1, 32FC1)")
    return encoding


def decode_compressed_depth(msg) -> tuple:
    """compressedDepth -> (array, encoding): 16UC1 as uint16 sensor units, 32FC1 as
    float32 metres with NaN where there was no reading. ValueError if unreadable."""
    encoding = depth_encoding(msg.format)
    raw = bytes(msg.data)
    if len(raw) <= HEADER.size:
        raise ValueError(f"compressedDepth data of {len(raw)} bytes has no image after its header")
    _, quant_a, quant_b = HEADER.unpack_from(raw)
    image = cv2.imdecode(np.frombuffer(raw, np.uint8, offset=HEADER.size), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint16 or image.ndim != 2:
        raise ValueError(f"compressedDepth ({msg.format}) does not hold a 16-bit single-channel PNG")
    if encoding == "16UC1":
        return image, encoding
    with np.errstate(divide="ignore", invalid="ignore"):
        metres = np.float32(quant_a) / (image.astype(np.float32) - np.float32(quant_b))
    metres[image == 0] = np.nan
    return metres, encoding


def encode_compressed_depth(depth: np.ndarray, encoding: str) -> tuple:
    """uint16 (16UC1) or float32 metres (32FC1, NaN/<=0 = no reading) -> (format, bytes)
    as compressed_depth_image_transport writes them (png codec)."""
    quant_a = quant_b = 0.0
    if encoding == "16UC1":
        image = np.ascontiguousarray(depth, dtype=np.uint16)
    elif encoding == "32FC1":
        quant_a = DEPTH_QUANTIZATION * (DEPTH_QUANTIZATION + 1.0)
        quant_b = 1.0 - quant_a / DEPTH_MAX
        depth = np.asarray(depth, dtype=np.float32)
        valid = np.isfinite(depth) & (depth > 0) & (depth < DEPTH_MAX)
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = np.where(valid, np.float32(quant_a) / depth + np.float32(quant_b), 0)
        image = np.clip(inverse, 0, 65535).astype(np.uint16)
    else:
        raise ValueError(f"compressedDepth encodes 16UC1 or 32FC1, not {encoding}")
    ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("could not encode the depth image as PNG")
    return f"{encoding}; compressedDepth png", HEADER.pack(0, quant_a, quant_b) + png.tobytes()
