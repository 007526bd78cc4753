"""Which encoded images we decode, told by their first bytes, and their size read from
the header before any pixel is decoded.

OpenCV picks its decoder by the data's signature, whatever a file name or a message's
`format` says, and it knows formats whose headers nothing here reads (PAM, PFM, Radiance
HDR, Sun raster, JPEG 2000, ...): a size limit checked on a JPEG or PNG header did not
apply to them (a PAM sent as "jpeg" was decoded at 1x20000, an RLE HDR of 6000x6000 was
decoded before it was refused). So only the formats listed here are decoded, each
recognised by the same signature OpenCV goes by, its header's size is checked first, and
the decoded image must have that size. Anything else is a ValueError naming what it is.
"""
import io
from pathlib import Path

import numpy as np

# name -> (signatures, Pillow's format name); OpenCV's decoders accept exactly these starts.
SIGNATURES = {
    "jpeg": ((b"\xff\xd8\xff",), "JPEG"),
    "png": ((b"\x89PNG\r\n\x1a\n",), "PNG"),
    "bmp": ((b"BM",), "BMP"),
    "tiff": ((b"II*\x00", b"MM\x00*"), "TIFF"),
    "pnm": ((b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"), "PPM"),
    "webp": ((b"RIFF",), "WEBP"),  # + "WEBP" at byte 8, checked in identify()
}
COMPRESSED_FORMATS = ("jpeg", "png")  # what image_transport's `compressed` plugin writes
FILE_FORMATS = ("jpeg", "png", "bmp", "tiff", "pnm", "webp")  # `textdepth predict --image`
# What other data looks like, for the message (OpenCV would have decoded all of these).
OTHER_SIGNATURES = ((b"P7", "PAM"), (b"PF", "PFM"), (b"Pf", "PFM"), (b"#?", "Radiance HDR"),
                    (b"\x59\xa6\x6a\x95", "Sun raster"), (b"GIF8", "GIF"), (b"\x00\x00\x00\x0cjP", "JPEG 2000"),
                    (b"\xffO\xffQ", "JPEG 2000"), (b"\x76\x2f\x31\x01", "OpenEXR"))


def identify(head: bytes):
    """The FILE_FORMATS name whose signature `head` (the first 16+ bytes) starts with, else None."""
    for name, (starts, _) in SIGNATURES.items():
        if head.startswith(starts) and (name != "webp" or head[8:12] == b"WEBP"):
            return name
    return None


def describe_data(head: bytes) -> str:
    """What unlisted data is, as far as its start tells ('PAM', or its first bytes)."""
    for start, name in OTHER_SIGNATURES:
        if head.startswith(start):
            return name
    return f"data starting {head[:8]!r}" if head else "empty data"


def header_size(source, fmt: str) -> tuple:
    """(height, width) the header of `source` (bytes or a path) claims, read by Pillow
    restricted to `fmt` (no pixel decoded); ValueError if that header is unreadable."""
    from PIL import Image, UnidentifiedImageError

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # we judge the size ourselves
    try:
        fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
        with Image.open(fp, formats=[SIGNATURES[fmt][1]]) as image:
            width, height = image.size
    except UnidentifiedImageError:
        raise ValueError(f"its {fmt} header is unreadable") from None
    except Exception as exc:  # noqa: BLE001 - Pillow's plugins raise many kinds on a bad header
        raise ValueError(f"its {fmt} header is unreadable ({type(exc).__name__}: {str(exc)[:80]})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return height, width


def checked_format(head: bytes, formats, what: str) -> str:
    """The format of data starting with `head`, if it is one of `formats`; else ValueError."""
    fmt = identify(head)
    if fmt is None or fmt not in formats:
        raise ValueError(f"{what} is {fmt.upper() if fmt else describe_data(head)}, not one of the formats read "
                         f"here ({', '.join(formats)}; told by content, not by name)")
    return fmt


def decode(source, formats, flags, size_check=None, what: str = "image") -> np.ndarray:
    """Decode `source` (bytes, or a file path) with OpenCV if its content is one of
    `formats`. `size_check(height, width)` runs on the header's size before decoding
    (raise there to refuse); the decoded image must have that size. ValueError when the
    data is another format, its header or pixels are unreadable, or the sizes disagree."""
    import cv2

    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else None
    if data is None:
        with open(source, "rb") as f:
            head = f.read(16)
    else:
        head = data[:16]
    fmt = checked_format(head, formats, what)
    size = header_size(data if data is not None else source, fmt)
    if size_check is not None:
        size_check(*size)
    try:
        image = (cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data is not None
                 else cv2.imread(str(Path(source)), flags))
    except cv2.error as exc:  # e.g. over OpenCV's own pixel limit
        raise ValueError(f"{what} ({fmt}) could not be decoded: {' '.join(str(exc).split())[-120:]}") from None
    if image is None:
        raise ValueError(f"{what} ({fmt}{f', {len(data)} bytes' if data is not None else ''}) could not be decoded")
    if sorted(image.shape[:2]) != sorted(size):  # EXIF orientation may swap the sides
        raise ValueError(f"{what} ({fmt}) decoded to {image.shape[1]}x{image.shape[0]}, its header says "
                         f"{size[1]}x{size[0]}")
    return image
