"""`textdepth predict` on hostile images and failing disks: one line, exit 2, no partial
output. The full and read-only disks are real (a small tmpfs, see fs_helpers)."""
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from hostile_images import hdr
from fs_helpers import require_private_mounts, run_on_tmpfs
from textdepth_ros.errors import UserError
from textdepth_ros.image_limits import DEFAULT_MAX_PIXELS, check_pixels, header_size

PREDICT = [sys.executable, "-m", "textdepth_ros.cli", "predict"]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path, width, height, rows=None):
    """A PNG (8-bit RGB) of width x height: `rows` of zeros really deflated, or, when rows
    is None, only a header that claims the size (a broken body)."""
    deflate = zlib.compressobj(9)
    if rows is None:
        body = deflate.compress(b"\0" * 64)
    else:
        row = b"\0" * (1 + 3 * width)  # filter byte + pixels
        body = b"".join(deflate.compress(row) for _ in range(rows))
    body += deflate.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b""))
    return path


def predict(*args, timeout=300):
    return subprocess.run([*PREDICT, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def assert_one_line(result):
    """Exit 2 and one error line (besides the untrained-weights warning), no traceback."""
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("WARNING: no --checkpoint")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr


def peak_rss_mb(argv, timeout=300):
    """(completed process, peak resident MB) of argv run in a fresh child."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(r.returncode); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "sys.stderr.write(r.stderr)")
    wrapper = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True,
                             timeout=timeout)
    rc, rss_kb = wrapper.stdout.split()[:2]
    return subprocess.CompletedProcess(argv, int(rc), "", wrapper.stderr), int(rss_kb) / 1024


def test_a_header_claiming_100000_squared_pixels_is_refused_before_decoding(tmp_path):
    image = write_png(tmp_path / "claims.png", 100_000, 100_000)
    assert header_size(image) == (100_000, 100_000)
    result = predict("--image", image, "--out", tmp_path / "d.npy")
    assert_one_line(result)
    assert "100000x100000" in result.stderr and "--max-pixels" in result.stderr
    assert not (tmp_path / "d.npy").exists()
    # Without our limit, OpenCV's own cap (2^30 pixels) refuses it: still one line.
    result = predict("--image", image, "--out", tmp_path / "d.npy", "--max-pixels", 0)
    assert_one_line(result)
    assert "cannot read image" in result.stderr


def test_a_real_20000_squared_png_is_refused_without_allocating_it(tmp_path):
    # A valid PNG whose pixels (1.2 GB as BGR, 4.8 GB as a float tensor) would decode.
    image = write_png(tmp_path / "huge.png", 20_000, 20_000, rows=20_000)
    assert image.stat().st_size < 5_000_000
    result, peak_mb = peak_rss_mb([*PREDICT, "--image", image, "--out", tmp_path / "d.npy"])
    assert_one_line(result)
    assert "20000x20000" in result.stderr
    # The pixels alone are 1,144 MB as BGR; the refusal comes before torch is even imported.
    assert peak_mb < 400, f"predict used {peak_mb:.0f} MB: it decoded the image"


def test_formats_without_a_readable_header_are_refused_unread(tmp_path):
    """A 2.3 MB Radiance HDR of 6000x6000 (36 Mpx, 432 MB decoded) was decoded by OpenCV
    before the size check refused it: only formats whose header is read are decoded."""
    image = tmp_path / "scene.jpg"  # the name does not matter: the content decides
    image.write_bytes(hdr(6000, 6000))
    result, peak_mb = peak_rss_mb([*PREDICT, "--image", image, "--out", tmp_path / "d.npy"])
    assert_one_line(result)
    assert peak_mb < 300, f"predict used {peak_mb:.0f} MB: it decoded the image"
    assert "is Radiance HDR, not one of the formats read here" in result.stderr
    assert not list(tmp_path.glob("d*"))


def test_max_pixels_option_and_the_shared_check(tmp_path):
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.zeros((100, 120, 3), np.uint8))
    result = predict("--image", image, "--out", tmp_path / "d.npy", "--max-pixels", 10_000)
    assert_one_line(result)
    assert "120x100 = 12,000 pixels, over the limit of 10,000" in result.stderr
    assert_one_line(predict("--image", image, "--out", tmp_path / "d.npy", "--max-pixels", -1))
    # The helper the node uses on message sizes.
    check_pixels(4096, 4096)
    with pytest.raises(UserError, match="over the limit of 16,777,216 \\(4096x4096\\)"):
        check_pixels(4097, 4096, DEFAULT_MAX_PIXELS, "image message")
    with pytest.raises(UserError, match="empty"):
        check_pixels(0, 640)
    check_pixels(100_000, 100_000, 0)  # 0 = no limit


def test_a_non_image_file_is_one_line(tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("not an image")
    assert_one_line(predict("--image", bogus, "--out", tmp_path / "d.npy"))


@pytest.fixture
def small_image(tmp_path):
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8))
    return path


def test_predict_on_a_full_disk_leaves_no_partial_output(tmp_path, small_image):
    require_private_mounts()
    out_dir = tmp_path / "full"
    # 16 KiB: the 24.7 KB depth .npy cannot fit; an earlier result is there and must survive.
    result, listing = run_on_tmpfs(out_dir, [*PREDICT, "--image", small_image, "--out", out_dir / "d.npy"],
                                   size_kb=16, prepare=f"echo earlier > {out_dir}/d.npy")
    assert_one_line(result)
    assert "No space left on device" in result.stderr
    assert listing == {"d.npy": len("earlier\n")}, listing  # untouched, no temporaries


def test_predict_into_a_read_only_folder_is_one_line(tmp_path, small_image):
    require_private_mounts()
    out_dir = tmp_path / "ro"
    result, listing = run_on_tmpfs(out_dir, [*PREDICT, "--image", small_image, "--out", out_dir / "d.npy"],
                                   size_kb=64, read_only=True)
    assert_one_line(result)
    assert "Read-only file system" in result.stderr
    assert listing == {}


def test_predict_writes_all_outputs_and_no_temporaries(tmp_path, small_image):
    out = tmp_path / "o" / "d.npy"
    result = predict("--image", small_image, "--out", out, "--uncertainty")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["d.npy", "d.png", "d_uncertainty.npy"]
    assert np.load(out).shape == (64, 96)

