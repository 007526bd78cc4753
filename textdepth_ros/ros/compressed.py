"""sensor_msgs/CompressedImage <-> numpy, as image_transport's `compressed` and
`compressedDepth` plugins write them (robots usually record these, not raw images).

compressed:       `format` "jpeg" / "png", or image_transport's "rgb8; jpeg compressed
                  bgr8"; `data` is the encoded file (colour in BGR order, as OpenCV writes).
compressedDepth:  `format` "16UC1; compressedDepth png" (or "... compressedDepth" from
                  older versions); `data` = a 12-byte header (int32 format, float32
                  depthQuantA, float32 depthQuantB) + a 16-bit PNG: the raw 16UC1 depth,
                  or for 32FC1 the quantized inverse depth v = A / depth + B (0 = no
                  reading), so depth = A / (v - B). The "rvl" codec is not read here.
Only JPEG and PNG data is decoded, told by its content whatever `format` says, and its
header's size is checked before its pixels are (image_formats.py says why).
"""
import struct

import cv2
import numpy as np

from textdepth_ros.image_formats import COMPRESSED_FORMATS, checked_format, decode, header_size

HEADER = struct.Struct("<iff")  # compressed_depth_image_transport's ConfigHeader
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_CODECS = COMPRESSED_FORMATS
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


def compressed_to_rgb8(msg, size_check=None) -> np.ndarray:
    """A compressed colour or mono image -> HxWx3 uint8 RGB. Only JPEG and PNG data is
    decoded, told by its content (image_formats); `size_check(height, width)` runs on its
    header's size before any pixel is decoded. ValueError if unreadable."""
    color_codec(msg.format)
    data = bytes(msg.data)
    try:
        image = decode(data, COMPRESSED_FORMATS, cv2.IMREAD_UNCHANGED, size_check, "the data")
    except ValueError as exc:
        raise ValueError(f"compressed image ({msg.format}, {len(data)} bytes) could not be decoded: {exc}") from None
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"compressed image ({msg.format}) decoded to {image.dtype}, not 8 or 16 bits")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def compressed_size(msg) -> tuple:
    """(height, width) a compressed colour image's header claims, read without decoding its
    pixels (so a size limit is checked first). ValueError when it is not JPEG or PNG data
    (told by content, whatever `format` says) or its header is unreadable."""
    color_codec(msg.format)
    data = bytes(msg.data)
    try:
        return header_size(data, checked_format(data[:16], COMPRESSED_FORMATS, "the data"))
    except ValueError as exc:
        raise ValueError(f"compressed image ({msg.format}, {len(data)} bytes) could not be decoded: {exc}") from None


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


def compressed_depth_size(raw: bytes) -> tuple:
    """(height, width) of a compressedDepth payload's PNG, read from its IHDR; ValueError
    unless it is a 16-bit single-channel PNG (what compressed_depth_image_transport writes)."""
    png = raw[HEADER.size:]
    if len(png) < 33 or not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError(f"compressedDepth data does not hold a 16-bit single-channel PNG after its header "
                         f"(it starts {png[:8]!r})")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", png[16:26])
    if bit_depth != 16 or colour_type != 0:
        raise ValueError("compressedDepth does not hold a 16-bit single-channel PNG")
    return height, width


def decode_compressed_depth(msg, max_pixels: int = 0) -> tuple:
    """compressedDepth -> (array, encoding): 16UC1 as uint16 sensor units, 32FC1 as
    float32 metres with NaN where there was no reading. Its PNG header is checked (16-bit
    grey, within `max_pixels` if set) before decoding. ValueError if unreadable."""
    from textdepth_ros.errors import UserError
    from textdepth_ros.image_limits import check_pixels

    encoding = depth_encoding(msg.format)
    raw = bytes(msg.data)
    if len(raw) <= HEADER.size:
        raise ValueError(f"compressedDepth data of {len(raw)} bytes has no image after its header")
    _, quant_a, quant_b = HEADER.unpack_from(raw)
    size = compressed_depth_size(raw)
    try:
        check_pixels(*size, max_pixels, "compressedDepth image", "")
    except UserError as exc:
        raise ValueError(str(exc).rstrip("; ")) from None
    try:
        image = cv2.imdecode(np.frombuffer(raw, np.uint8, offset=HEADER.size), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # over OpenCV's own pixel cap
        raise ValueError(f"compressedDepth ({msg.format}) could not be decoded: {' '.join(str(exc).split())[-120:]}") \
            from None
    if image is None or image.dtype != np.uint16 or image.ndim != 2 or image.shape != size:
        raise ValueError(f"compressedDepth ({msg.format}) does not hold a readable 16-bit single-channel PNG")
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
