"""Timing helpers for the benchmarks. Every benchmark prints ratios of things measured
in the same run (this machine is shared and noisy), never absolute pass/fail times."""
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout


def add_model_arguments(parser, device: str = "auto", device_help: str = "auto, cpu, cuda, cuda:N") -> None:
    """The options every model benchmark shares: --config, --device, --height, --width."""
    parser.add_argument("--config", default="tiny", help="model config (default %(default)s)")
    parser.add_argument("--device", default=device, help=f"{device_help} (default %(default)s)")
    add_size_arguments(parser)


def add_size_arguments(parser) -> None:
    parser.add_argument("--height", type=int, default=480, help="image height (default %(default)s)")
    parser.add_argument("--width", type=int, default=640, help="image width (default %(default)s)")


def time_calls(fn, repeats: int, warmup: int = 1, sync=None) -> list:
    """Seconds per call of fn(), after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return times


def summary(times) -> str:
    d = dist(times)
    return f"median {d['median_ms']:.2f} ms, p90 {d['p90_ms']:.2f} ms, n={d['n']}"


def ros_environment(tmp: Path) -> None:
    """ROS 2 on loopback in a domain of its own, logs under `tmp`, the node's shared-memory
    Fast DDS profile; before rclpy.init, which reads them (child processes inherit all of it)."""
    import os
    import random

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ["ROS_DOMAIN_ID"] = os.environ.get("TEXTDEPTH_BENCH_DOMAIN_ID") or str(random.randint(100, 200))
    os.environ["ROS_HOME"] = str(tmp / "ros_home")
    (tmp / "ros_home").mkdir(parents=True, exist_ok=True)
    from textdepth_ros.ros.fastdds_profile import use_shm_profile

    use_shm_profile()


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_freed_buffers() -> bool:
    """glibc: serve blocks up to 32 MB from the heap and keep up to 64 MB of freed heap,
    so a client taking multi-MB messages reuses its buffers instead of page-faulting fresh
    ones for every message (docs/performance.md, "Python consumers of the depth"). For bench clients; the node does
    not do it (no measurable change there). False where libc is not glibc."""
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 64 << 20))


def verdict(ratio: float, target: float, higher_is_better: bool = False) -> str:
    ok = ratio >= target if higher_is_better else ratio <= target
    return f"{'MEETS' if ok else 'MISSES'} target {'>=' if higher_is_better else '<='} {target:g}"


def dist(values_s) -> dict:
    """Median, p10, p90, min, max, mean (ms) of a list of seconds."""
    ms = sorted(v * 1000.0 for v in values_s)
    if not ms:
        return {"n": 0}

    def pct(q):
        return ms[min(len(ms) - 1, int(round(q * (len(ms) - 1))))]

    return {"n": len(ms), "median_ms": statistics.median(ms), "p10_ms": pct(0.1), "p90_ms": pct(0.9),
            "min_ms": ms[0], "max_ms": ms[-1], "mean_ms": sum(ms) / len(ms)}


def fmt(d: dict) -> str:
    if not d.get("n"):
        return "no samples"
    return (f"median {d['median_ms']:.1f} ms, p10 {d['p10_ms']:.1f}, p90 {d['p90_ms']:.1f}, "
            f"min {d['min_ms']:.1f}, max {d['max_ms']:.1f}, n={d['n']}")
