"""What the GIL costs the node when the forward is short (a GPU with CUDA graphs), on the CPU.

On a GPU the worker spends its forward in `stream.synchronize()` with the GIL released,
then needs the GIL back; meanwhile the executor thread (deserialising images at the
camera's rate) and the publisher thread (converting and publishing the previous frame's
1.2 MB depth and 4.9 MB cloud: rclpy's `publish` holds the GIL throughout) run Python.
With Python's default 5 ms thread switch interval the worker can wait up to that long for
the GIL after every forward (H200, paper fp16 with compile + graphs: 8.9 ms per forward
in the node under a 120 Hz stream against 5.6 ms bare).

This runs the real `DepthNode` in this process (executor, worker, publisher threads,
`publish_frame`: depth, camera_info, XYZRGB cloud) with the network replaced by a wait of
--forward-ms that releases the GIL, as a replayed CUDA graph does. A feeder in another
process publishes --height x --width images + camera_info at --rate Hz and subscribes to
`depth/image` and `points`, as RViz would. Each switch interval runs twice, alternating, in one
run. Printed per interval: the forward as the node measures it (wait + getting the GIL
back), end-to-end FPS and output age; then the ratios of the node's setting against
Python's default. No GPU number comes from this: it shows the mechanism on this CPU.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import add_size_arguments, dist, fmt, keep_freed_buffers, ros_environment
from textdepth_ros.ros import topics
from textdepth_ros.ros.spinning import EXECUTORS

FEEDER_READY = "feeder ready"


# -- the feeder (a separate process) -----------------------------------------------------
def feeder(args) -> None:
    if args.tuned_client:  # glibc keeps freed multi-MB buffers: no fresh pages per received message
        keep_freed_buffers()
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from node_client import camera_info
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    def stamp_sec(msg):  # a message, or (--stamp-only) its CDR bytes: header.stamp.sec at bytes 4..8
        return int.from_bytes(msg[4:8], "little") if args.stamp_only else msg.header.stamp.sec

    rclpy.init()
    node = rclpy.create_node("gil_bench_feeder")
    pub_image = node.create_publisher(Image, "image", qos_profile_sensor_data)
    pub_info = node.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
    arrivals = {"depth": {}, "points": {}}

    def collect(topic):
        return lambda msg: arrivals[topic].setdefault(stamp_sec(msg), time.monotonic())

    node.create_subscription(Image, topics.DEPTH, collect("depth"), 10, raw=args.stamp_only)
    node.create_subscription(PointCloud2, topics.POINTS, collect("points"), 10, raw=args.stamp_only)
    h, w = args.height, args.width
    image = Image(height=h, width=w, encoding="rgb8", step=w * 3)
    image.data = np.random.default_rng(0).integers(0, 255, h * w * 3, dtype=np.uint8).tobytes()
    info = camera_info(h, w)
    deadline = time.monotonic() + 60
    while (pub_image.get_subscription_count() == 0 or node.count_publishers("points") == 0) \
            and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(FEEDER_READY, flush=True)
    sent, period = {}, 1.0 / args.rate
    start = next_pub = time.monotonic()
    while time.monotonic() - start < args.seconds:
        now = time.monotonic()
        if now >= next_pub:
            key = len(sent) + 1
            image.header.stamp.sec = info.header.stamp.sec = key
            pub_info.publish(info)
            sent[key] = time.monotonic()
            pub_image.publish(image)
            next_pub = max(next_pub + period, now)  # a busy machine: no burst to catch up
        rclpy.spin_once(node, timeout_sec=max(0.0, min(next_pub - time.monotonic(), 0.005)))
    end = time.monotonic() + 1.0
    while time.monotonic() < end:  # the last frames
        rclpy.spin_once(node, timeout_sec=0.05)
    depth = sorted(arrivals["depth"].items())
    result = {"sent_at": sent, "depth_at": dict(depth), "sent": len(sent), "depth": len(depth),
              "points": len(arrivals["points"]),
              "ages_s": [t - sent[k] for k, t in depth if k in sent],
              "fps": (len(depth) - 1) / (depth[-1][1] - depth[0][1]) if len(depth) > 1 else 0.0}
    print(json.dumps(result), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


# -- the node side (this process) ---------------------------------------------------------
class GilFreeForward:
    """Stands in for the estimator: each forward waits `forward_s` with the GIL released
    (time.sleep, as stream.synchronize) and returns a fixed depth; its measured time
    includes getting the GIL back, as the node's forward time does on a GPU."""

    device, untrained, encoder_calls, depth_limits = "cpu", True, 0, (0.1, 10.0)

    def __init__(self, forward_s: float, height: int, width: int):
        import numpy as np

        from textdepth_ros.serving.inference import Prediction

        self.forward_s, self.times = forward_s, []
        rng = np.random.default_rng(1)
        self._depth = rng.uniform(0.5, 9.5, (height, width)).astype(np.float32)
        self._uncertainty = rng.uniform(0.0, 0.5, (height, width)).astype(np.float32)
        self._prediction = Prediction

    def describe(self) -> str:
        return f"GIL-free wait of {self.forward_s * 1000:g} ms"

    def predict(self, rgb, text):
        start = time.perf_counter()
        time.sleep(self.forward_s)
        elapsed = time.perf_counter() - start
        self.times.append(elapsed)
        return self._prediction(depth=self._depth, uncertainty=self._uncertainty, depth_range=self.depth_limits,
                                forward_ms=elapsed * 1000.0)


STAGES = ("camera publish -> node callback (DDS, deserialise)", "callback -> worker takes the frame",
          "worker: decode, forward, hand over", "hand over -> publisher starts",
          "publisher: depth to Image + publish()", "publish() returned -> client callback (DDS, deserialise)")
INSIDE_THE_NODE = STAGES[1:5]  # callback .. the depth publish() returned
TOTAL = "total: camera publish -> client has depth"


class StageClock:
    """Per-frame times (CLOCK_MONOTONIC, shared with the feeder's process) at the node's
    stage boundaries, recorded by wrapping the node's own methods and depth publisher."""

    def __init__(self, node):
        self.at = {}
        on_image, process, publish_frame, pub_depth = node.on_image, node.process, node.publish_frame, node.pub_depth

        def mark(key, name):
            self.at.setdefault(key, {})[name] = time.monotonic()

        def timed_on_image(msg):
            mark(msg.header.stamp.sec, "callback")
            on_image(msg)

        def timed_process(msg, received):
            mark(msg.header.stamp.sec, "taken")
            process(msg, received)
            mark(msg.header.stamp.sec, "handed")

        def timed_publish_frame(item):
            mark(item[0].header.stamp.sec, "publishing")
            publish_frame(item)

        class TimedDepth:  # the depth publisher, marking when its publish() returns
            def __getattr__(self, name):
                return getattr(pub_depth, name)

            def publish(self, msg):
                pub_depth.publish(msg)
                mark(msg.header.stamp.sec, "published")

        node.on_image, node.process, node.publish_frame = timed_on_image, timed_process, timed_publish_frame
        node.pub_depth = TimedDepth()

    def stages(self, sent_at: dict, depth_at: dict, skip: int = 5) -> dict:
        """Median and p90 ms of each stage over the frames that went all the way."""
        names = ("callback", "taken", "handed", "publishing", "published")
        rows = []
        for key, at in self.at.items():
            if key > skip and str(key) in sent_at and str(key) in depth_at and all(n in at for n in names):
                marks = [sent_at[str(key)]] + [at[n] for n in names] + [depth_at[str(key)]]
                rows.append([b - a for a, b in zip(marks, marks[1:])] + [marks[-1] - marks[0]])
        columns = list(zip(*rows)) if rows else [[] for _ in range(len(STAGES) + 1)]
        return {name: dist(col) for name, col in zip(STAGES + (TOTAL,), columns)}


def one_run(args, switch_ms: float, tmp: Path, executor_kind: str = None) -> dict:
    import rclpy
    from rclpy.parameter import Parameter

    from textdepth_ros.ros.depth_node import DepthNode
    from textdepth_ros.ros.spinning import make_executor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = DepthNode(context=context, parameter_overrides=[Parameter("gil_switch_interval_ms", value=switch_ms)])
    node.estimator = GilFreeForward(args.forward_ms / 1000.0, args.height, args.width)
    clock = StageClock(node) if args.stages else None
    executor, warning = make_executor(context, executor_kind or args.executor)
    if warning:
        print(f"[gil] {warning}", flush=True)
    executor.add_node(node)
    spinning = threading.Event()
    spinning.set()

    def spin():
        while spinning.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, name="executor", daemon=True)
    child = None
    try:
        node.serve()
        spinner.start()
        child = subprocess.Popen([sys.executable, __file__, "--feeder", "--rate", str(args.rate), "--seconds",
                                  str(args.seconds), "--height", str(args.height), "--width", str(args.width)]
                                 + (["--tuned-client"] if args.tuned_client else [])
                                 + (["--stamp-only"] if args.stamp_only else []),
                                 stdout=subprocess.PIPE, stderr=open(tmp / "feeder.log", "a"), text=True)
        if child.stdout.readline().strip() != FEEDER_READY:
            raise RuntimeError(f"the feeder did not connect; see {tmp / 'feeder.log'}")
        node.estimator.times.clear()
        out = json.loads(child.stdout.readline())
    finally:
        if child is not None:
            child.wait(30)
        spinning.clear()
        spinner.join(5)
        node.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    forwards = node.estimator.times[5:]  # the first ones overlap the connection
    sent_at, depth_at = out.pop("sent_at"), out.pop("depth_at")
    stages = clock.stages(sent_at, depth_at) if clock else None
    return {"switch_ms": switch_ms, "executor": type(executor).__name__, "forward": dist(forwards),
            "age": dist(out.pop("ages_s")), **out,
            **({"stages": stages} if stages else {})}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--forward-ms", type=float, default=8.0,
                        help="the GIL-free forward (default %(default)s: between the H200's graph and compile+graph; "
                             "0: the plumbing's own image -> depth latency)")
    parser.add_argument("--rate", type=float, default=120.0, help="camera rate in Hz (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0, help="stream length per run (default %(default)s)")
    add_size_arguments(parser)
    parser.add_argument("--node-ms", type=float, default=0.5,
                        help="the node's switch interval to compare (default %(default)s)")
    parser.add_argument("--stages", action="store_true",
                        help="instead of comparing switch intervals: one run at the node's, and where each frame's "
                             "time goes, stage by stage (median and p90 ms)")
    parser.add_argument("--stamp-only", action="store_true",
                        help="the client takes depth and cloud as raw CDR bytes and reads only their stamps "
                             "(little-endian hosts) instead of deserialising them into Python messages")
    parser.add_argument("--tuned-client", action="store_true",
                        help="the client process keeps freed multi-MB buffers (glibc mallopt), so its own "
                             "deserialising of 1.2 MB depth images costs less of the total")
    parser.add_argument("--executor", choices=EXECUTORS, default="auto",
                        help="the node's executor, as its `executor` parameter (default %(default)s)")
    parser.add_argument("--compare-executors", action="store_true",
                        help="instead of comparing switch intervals: SingleThreadedExecutor against EventsExecutor "
                             "at the node's switch interval, two runs each, alternating (with --stages: stage by stage)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--feeder", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.feeder:
        return feeder(args)

    tmp = Path(tempfile.mkdtemp(prefix="textdepth_gil_bench_"))
    ros_environment(tmp)  # the node's own Fast DDS profile; the feeder inherits it
    before = sys.getswitchinterval()
    default_ms = before * 1000.0
    if args.compare_executors:
        return executor_comparison(args, tmp)
    if args.stages:
        return stage_run(args, tmp)
    runs = {default_ms: [], args.node_ms: []}
    try:
        untimed_run(args, tmp)  # (it lost ~10 % FPS whichever setting it had)
        for switch_ms in (default_ms, args.node_ms, default_ms, args.node_ms):
            run = one_run(args, switch_ms, tmp)
            runs[switch_ms].append(run)
            print(f"[gil] switch {switch_ms:g} ms: forward in the node {fmt(run['forward'])}; sent {run['sent']}, "
                  f"depth {run['depth']}, points {run['points']}, {run['fps']:.1f} FPS; age {fmt(run['age'])}",
                  flush=True)
    finally:
        sys.setswitchinterval(before)

    def both(switch_ms, get):
        return mean_over(runs[switch_ms], get)

    wait_ms = args.forward_ms or float("nan")  # 0: the plumbing's own latency, no stretch to speak of
    stretch = {s: both(s, lambda r: r["forward"]["median_ms"]) / wait_ms for s in runs}
    stretch_p90 = {s: both(s, lambda r: r["forward"]["p90_ms"]) / wait_ms for s in runs}
    fps = {s: both(s, lambda r: r["fps"]) for s in runs}
    age = {s: both(s, lambda r: r["age"]["max_ms"]) for s in runs}
    result = {"forward_ms": args.forward_ms, "rate_hz": args.rate, "size": [args.height, args.width],
              "default_switch_ms": default_ms, "node_switch_ms": args.node_ms, "runs": runs,
              "forward_stretch": {str(k): v for k, v in stretch.items()},
              "forward_stretch_p90": {str(k): v for k, v in stretch_p90.items()}, "fps": {str(k): v for k, v in fps.items()},
              "max_age_ms": {str(k): v for k, v in age.items()},
              "stretch_ratio": stretch[args.node_ms] / stretch[default_ms], "fps_ratio": fps[args.node_ms] / fps[default_ms]}
    print(f"[gil] {args.height}x{args.width} at {args.rate:g} Hz, {args.forward_ms:g} ms GIL-free forward, "
          f"mean of 2 runs each:")
    for s in runs:
        print(f"[gil]   switch {s:g} ms: node's forward / GIL-free wait {stretch[s]:.2f} median, "
              f"{stretch_p90[s]:.2f} p90; median output age {both(s, lambda r: r['age']['median_ms']):.1f} ms, "
              f"{fps[s]:.1f} FPS, max output age {age[s]:.1f} ms")
    print(f"[gil] node setting vs Python's default: forward stretch x{result['stretch_ratio']:.2f}, "
          f"median output age x{both(args.node_ms, lambda r: r['age']['median_ms']) / both(default_ms, lambda r: r['age']['median_ms']):.2f}, "
          f"FPS x{result['fps_ratio']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def mean_over(runs: list, get) -> float:
    """Mean of get(run) over the repeated runs of one setting."""
    return sum(get(r) for r in runs) / len(runs)


def untimed_run(args, tmp: Path) -> None:
    """The first run in a process pays for shared-memory segments and first-touch page faults."""
    one_run(argparse.Namespace(**{**vars(args), "seconds": 2.0, "stages": False}), args.node_ms, tmp)


def stage_run(args, tmp: Path) -> dict:
    untimed_run(args, tmp)
    run = one_run(args, args.node_ms, tmp)
    client = ("stamp-only" if args.stamp_only else "deserialising") + (", tuned" if args.tuned_client else ", default")
    print(f"[stages] {args.height}x{args.width} at {args.rate:g} Hz, GIL-free {args.forward_ms:g} ms forward, "
          f"{client} client malloc, {run['executor']}; {run['depth']} of {run['sent']} frames:")
    for name, d in run["stages"].items():
        print(f"[stages]   {name:58s} median {d.get('median_ms', float('nan')):5.2f} ms, p90 {d.get('p90_ms', float('nan')):5.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(run, indent=2))
    return run


def executor_comparison(args, tmp: Path) -> dict:
    """SingleThreadedExecutor vs the events executor, alternating, two runs each: FPS,
    the node's forward against the GIL-free wait, output age and (--stages) each stage."""
    kinds = ("single", "events")
    runs = {kind: [] for kind in kinds}
    untimed_run(args, tmp)
    for kind in kinds * 2:
        run = one_run(args, args.node_ms, tmp, executor_kind=kind)
        runs[kind].append(run)
        print(f"[executor] {run['executor']}: {run['fps']:.1f} FPS, forward in the node {fmt(run['forward'])}, "
              f"age {fmt(run['age'])}", flush=True)

    metrics = {"fps": lambda r: r["fps"], "forward_p90_ms": lambda r: r["forward"].get("p90_ms", float("nan")),
               "age_median_ms": lambda r: r["age"]["median_ms"], "age_max_ms": lambda r: r["age"]["max_ms"]}
    if args.stages:
        for name in runs[kinds[0]][0]["stages"]:
            metrics[name] = lambda r, name=name: r["stages"][name].get("median_ms", float("nan"))
    table = {name: {kind: mean_over(runs[kind], get) for kind in kinds} for name, get in metrics.items()}
    names = {kind: runs[kind][0]["executor"] for kind in kinds}
    print(f"[executor] {args.height}x{args.width} at {args.rate:g} Hz, GIL-free {args.forward_ms:g} ms forward, "
          f"switch interval {args.node_ms:g} ms, mean of 2 runs each ({names['single']} -> {names['events']}):")
    for name, row in table.items():
        print(f"[executor]   {name:58s} {row['single']:7.2f} -> {row['events']:7.2f}  "
              f"x{row['events'] / row['single']:.2f}")
    result = {"forward_ms": args.forward_ms, "rate_hz": args.rate, "size": [args.height, args.width],
              "executors": names, "runs": runs, "table": table}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
