"""Encoded images that OpenCV decodes by content although they are not JPEG or PNG, each
written by OpenCV itself (or by the format's spec, for PAM): what the hardening tests
send where JPEG/PNG is expected."""
import struct
import zlib

import cv2
import numpy as np


def pam(width: int, height: int) -> bytes:
    """A PAM (P7) RGB image, zeros: OpenCV decodes it whatever a `format` string claims."""
    header = f"P7\nWIDTH {width}\nHEIGHT {height}\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n".encode()
    return header + bytes(width * height * 3)


def hdr(width: int, height: int) -> bytes:
    """A Radiance HDR (RLE) of zeros: 6000x6000 (36 Mpx) is 2.3 MB, 432 MB once decoded."""
    ok, data = cv2.imencode(".hdr", np.zeros((height, width, 3), np.float32))
    assert ok
    return data.tobytes()


def pfm(width: int, height: int) -> bytes:
    ok, data = cv2.imencode(".pfm", np.ones((height, width, 3), np.float32))
    assert ok
    return data.tobytes()


def bmp(width: int, height: int) -> bytes:
    ok, data = cv2.imencode(".bmp", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


def png_claiming(height: int, width: int, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A PNG whose header claims height x width, with a token of pixel data (an IDAT
    chunk: OpenCV then reads the header and refuses over 2^30 pixels with a cv2.error)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))
