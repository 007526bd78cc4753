"""640x480 depth -> packed PointCloud2 XYZRGB, against a bare numpy back-projection of
the same depth (the floor any packing can reach). Target: ratio <= 2.

Then the navigation cloud (`cloud_stride`, `cloud_voxel`; ros/nav_cloud.py) on a generated
640x480 room: per stride 1, 2, 4, 8 the node's cloud build (node_cloud) and its publish()
to a subscriber in another process over DDS (the node's shared-memory profile), and
the bytes per frame, as ratios to stride 1 measured in the same run (stride 4 must cut
the bytes 16x); and 5 cm voxels after stride 4 and after stride 1: points, bytes, cost.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ros_environment, summary, time_calls, verdict
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


SUBSCRIBER = """
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from sensor_msgs.msg import PointCloud2
rclpy.init()
node = rclpy.create_node("pointcloud_bench_subscriber")
node.create_subscription(PointCloud2, "points", lambda msg: None, 10)
print("ready", flush=True)
executor = SingleThreadedExecutor()
executor.add_node(node)
try:
    while rclpy.ok():
        executor.spin_once(timeout_sec=0.1)
except ExternalShutdownException:  # SIGTERM from the benchmark: done
    pass
"""


def generated_room(height=480, width=640):
    """Depth (NaN in the sensor-like holes), uncertainty and colour of a generated office."""
    from textdepth_ros.data.generate import make_room, render_room

    rng = np.random.default_rng(0)
    rgb, depth = render_room(rng, make_room(rng, "office"), height, width)
    depth = np.where(depth > 0, depth, np.float32(np.nan)).astype(np.float32)
    return depth, (0.05 * depth).astype(np.float32), rgb


def navigation_cloud(strides, repeats: int, voxel: float = 0.05) -> dict:
    """Build + publish cost and bytes per stride, ratios to stride 1 (module docstring)."""
    import rclpy
    from sensor_msgs.msg import CameraInfo, PointCloud2

    from textdepth_ros.ros.nav_cloud import node_cloud

    depth, uncertainty, rgb = generated_room()
    info = CameraInfo(height=480, width=640)
    info.k = [K[0], 0.0, K[2], 0.0, K[1], K[3], 0.0, 0.0, 1.0]
    header = Header(frame_id="camera_optical")
    tmp = Path(tempfile.mkdtemp(prefix="pointcloud_bench_"))
    ros_environment(tmp)  # the node's shared-memory profile; the subscriber process inherits it
    child = subprocess.Popen([sys.executable, "-c", SUBSCRIBER], stdout=subprocess.PIPE, text=True)
    rclpy.init()
    node = rclpy.create_node("pointcloud_bench_publisher")
    pub = node.create_publisher(PointCloud2, "points", 10)
    rows = {}
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if pub.get_subscription_count() == 0:
            raise RuntimeError("the subscriber process never matched")
        cases = [(s, 0.0) for s in strides] + [(4, voxel), (1, voxel)]
        for stride, leaf in cases:
            params = {"cloud_stride": stride, "cloud_voxel": leaf, "cloud_rgb": True, "max_range": 0.0,
                      "max_uncertainty": 0.0}
            build = time_calls(lambda: node_cloud(depth, uncertainty, info, header, rgb, params), repeats, warmup=2)
            msg = node_cloud(depth, uncertainty, info, header, rgb, params)
            publish = time_calls(lambda: pub.publish(msg), repeats, warmup=2)
            both = [b + p for b, p in zip(build, publish)]
            rows[(stride, leaf)] = {"build_ms": float(np.median(build) * 1e3),
                                    "publish_ms": float(np.median(publish) * 1e3),
                                    "total_ms": float(np.median(both) * 1e3), "bytes": len(msg.data),
                                    "points": msg.width * msg.height}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        child.terminate()
        child.wait(10)
    full = rows[(1, 0.0)]
    print(f"[navigation cloud] generated office 640x480 XYZRGB, median of {repeats}; ratios to stride 1 of this run")
    print(f"[navigation cloud] {'cloud':<22}{'points':>8}{'bytes':>10}{'build ms':>10}{'publish ms':>12}"
          f"{'bytes ratio':>13}{'cost ratio':>12}")
    out = {}
    for (stride, leaf), r in rows.items():
        name = f"stride {stride}" + (f" + voxel {leaf:g} m" if leaf else "")
        bytes_ratio, cost_ratio = full["bytes"] / r["bytes"], full["total_ms"] / r["total_ms"]
        print(f"[navigation cloud] {name:<22}{r['points']:>8}{r['bytes']:>10}{r['build_ms']:>10.2f}"
              f"{r['publish_ms']:>12.2f}{bytes_ratio:>13.2f}{cost_ratio:>12.2f}")
        out[name] = dict(r, bytes_ratio=bytes_ratio, cost_ratio=cost_ratio)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=50, help="timed calls of each (default %(default)s)")
    parser.add_argument("--strides", default="1,2,4,8", help="cloud_stride values (default %(default)s)")
    parser.add_argument("--no-navigation", action="store_true", help="only the packing comparison")
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
    result = {"pointcloud_ratio": float(ratio), "pointcloud_ratio_vs_preallocated": float(ratio_prealloc),
              "bare_ms": float(np.median(bare) * 1e3), "bare_preallocated_ms": float(np.median(prealloc) * 1e3),
              "packed_ms": float(np.median(packed) * 1e3)}
    if not args.no_navigation:
        strides = [int(s) for s in args.strides.split(",")]
        if strides[0] != 1:
            strides.insert(0, 1)
        result["navigation"] = navigation_cloud(strides, max(5, args.repeats // 2))
    return result


if __name__ == "__main__":
    main()
