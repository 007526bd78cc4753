"""640x480 depth -> packed PointCloud2 XYZRGB, against a bare numpy back-projection of
the same depth (the floor any packing can reach). Target: ratio <= 2."""
import argparse

import numpy as np
from common import summary, time_calls, verdict
from std_msgs.msg import Header

from textdepth_ros.ros.pointcloud import depth_to_pointcloud2

K = (518.8579, 519.4696, 325.5824, 253.7362)


def bare_backprojection(depth):
    fx, fy, cx, cy = K
    h, w = depth.shape
    u = np.arange(w, dtype=np.float32)[None, :]
    v = np.arange(h, dtype=np.float32)[:, None]
    return np.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], axis=-1)


def bare_backprojection_into(depth, x, y, out):
    """The same arithmetic into preallocated arrays: the floor without allocator costs
    (fresh multi-MB arrays page-fault on every call, which dominates `bare` here)."""
    fx, fy, cx, cy = K
    h, w = depth.shape
    np.multiply(np.arange(w, dtype=np.float32)[None, :] - np.float32(cx), depth, out=x)
    np.divide(x, np.float32(fx), out=x)
    np.multiply(np.arange(h, dtype=np.float32)[:, None] - np.float32(cy), depth, out=y)
    np.divide(y, np.float32(fy), out=y)
    return np.stack([x, y, depth], axis=-1, out=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=50, help="timed calls of each (default %(default)s)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.3, 9.0, (480, 640)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.05] = np.nan
    rgb = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    header = Header(frame_id="camera_optical")
    bare = time_calls(lambda: bare_backprojection(depth), args.repeats, warmup=3)
    packed = time_calls(lambda: depth_to_pointcloud2(depth, K, header, rgb), args.repeats, warmup=3)
    x, y, out = np.empty_like(depth), np.empty_like(depth), np.empty(depth.shape + (3,), np.float32)
    prealloc = time_calls(lambda: bare_backprojection_into(depth, x, y, out), args.repeats, warmup=3)
    ratio = np.median(packed) / np.median(bare)
    ratio_prealloc = np.median(packed) / np.median(prealloc)
    print(f"[pointcloud] bare numpy back-projection: {summary(bare)}")
    print(f"[pointcloud] PointCloud2 XYZRGB packing:  {summary(packed)}")
    print(f"[pointcloud] bare, preallocated outputs:  {summary(prealloc)}")
    print(f"[pointcloud] ratio packed/bare = {ratio:.2f} ({verdict(ratio, 2.0)})")
    print(f"[pointcloud] ratio packed/bare-preallocated = {ratio_prealloc:.2f} (info: against the same arithmetic into reused arrays)")
    return {"pointcloud_ratio": float(ratio), "pointcloud_ratio_vs_preallocated": float(ratio_prealloc),
            "bare_ms": float(np.median(bare) * 1e3), "bare_preallocated_ms": float(np.median(prealloc) * 1e3),
            "packed_ms": float(np.median(packed) * 1e3)}


if __name__ == "__main__":
    main()
