"""Scene text from the camera (`text_source: auto`): what it costs, in one run.

fps (default): two depth_node processes with the same model, one with text_source
    topic (off), one with auto (on, a decision every --period s), fed the same 640x480
    frames faster than they serve them, in alternating windows (off, on, on, off, ...,
    so drift in the machine's load hits both alike); depth FPS = depth messages received
    per second of window. Target: on / off >= 0.95 (within noise).
cost: the recognizer alone in this process (no ROS), set up as the node's recognition
    thread is (one torch CPU thread, lower priority): seconds per decision (open_clip's
    preparation of a 640x480 frame + the image tower + comparing with the label
    embeddings), with the image tower of --config (tiny: a 2-layer ViT-64; paper:
    ViT-L/14, 304 M parameters, random weights here). The label texts are encoded once
    at start (also timed).

    nice -n 10 python bench/auto_text_bench.py                       # fps, tiny
    nice -n 10 python bench/auto_text_bench.py --what cost --config paper --decisions 5
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import add_model_arguments, dist, fmt, ros_environment, verdict

FPS_TARGET = 0.95


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, device="cpu")
    parser.add_argument("--what", choices=("fps", "cost", "both"), default="fps", help="what to measure (default %(default)s)")
    parser.add_argument("--period", type=float, default=3.0, help="auto_text_period of the auto node (default %(default)s)")
    parser.add_argument("--window", type=float, default=20.0, help="seconds per window (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of off, on, on, off windows (default %(default)s)")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second sent (default %(default)s)")
    parser.add_argument("--decisions", type=int, default=20, help="cost: timed decisions (default %(default)s)")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds to wait for a node (default %(default)s)")
    return parser.parse_args(argv)


def frame(height: int, width: int):
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), np.full_like(xx, 128)], -1)
    return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ cost
def decision_cost(args) -> dict:
    """Seconds per recognition with --config's CLIP towers (random weights), in this process."""
    from types import SimpleNamespace

    import torch

    from textdepth_ros.model.config import load_model_config, variant_name
    from textdepth_ros.model.image_encoder import count_parameters
    from textdepth_ros.model.scene_labels import DEFAULT_TEMPLATE, NYU_SCENE_TYPES
    from textdepth_ros.model.text_encoder import ClipTextEncoder
    from textdepth_ros.serving.scene_recognition import SceneRecognizer

    from textdepth_ros.serving.scene_recognition import run_in_background

    run_in_background()  # as the node's recognition thread runs: lower priority, one torch CPU thread
    cfg = load_model_config(args.config)
    cfg["text_encoder"]["pretrained"] = None
    print(f"[cost] {args.config}: image tower {count_parameters(cfg['text_encoder']) / 1e6:.1f} M parameters, "
          f"{torch.get_num_threads()} torch thread(s), device {args.device}")
    start = time.perf_counter()
    model = SimpleNamespace(text_encoder=ClipTextEncoder(cfg["text_encoder"]), config=cfg, variant=variant_name(cfg))
    recognizer, _ = SceneRecognizer.for_model(model, list(NYU_SCENE_TYPES), DEFAULT_TEMPLATE, None, args.device)
    built = time.perf_counter()
    texts_s = recognizer_text_seconds(model, recognizer.texts)
    print(f"[cost] towers built in {built - start:.1f} s; encoding the {len(recognizer.texts)} label texts once: "
          f"{texts_s * 1000:.0f} ms (a start-up cost, not per decision)")
    rgb = frame(args.height, args.width)
    recognizer.scores(rgb)  # first call: allocations
    decisions, prepares, cpu = [], [], []
    for _ in range(args.decisions):
        t0 = time.perf_counter()
        recognizer.encoder.prepare(rgb)
        t1, c1 = time.perf_counter(), cpu_seconds()
        recognizer.scores(rgb)
        decisions.append(time.perf_counter() - t1)
        cpu.append(cpu_seconds() - c1)
        prepares.append(t1 - t0)
    d, p, c = dist(decisions), dist(prepares), dist(cpu)
    print(f"[cost] per decision ({args.height}x{args.width} frame), wall: {fmt(d)}")
    print(f"[cost]   CPU time of this process (all its threads) per decision: {fmt(c)}")
    print(f"[cost]   of which open_clip's preparation (resize, crop, normalise), wall: {fmt(p)}")
    share = c["median_ms"] / 1000 / args.period
    print(f"[cost]   at auto_text_period {args.period:g} s: {share:.1%} of one core (median CPU time / period)"
          + ("; a decision outlasts the period, so they run back to back" if d["median_ms"] / 1000 > args.period
             else ""))
    return {"config": args.config, "decision_ms": d, "cpu_ms": c, "prepare_ms": p, "label_texts_ms": texts_s * 1000,
            "build_s": built - start}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, all threads (torch's included)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def recognizer_text_seconds(model, texts) -> float:
    """One uncached encoding of the label texts (what for_model did at start)."""
    model.text_encoder.clear_cache()
    start = time.perf_counter()
    model.text_encoder(texts)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------- fps
class TwoNodeClient:
    """Feeds one node at a time and counts the depth messages each node publishes."""

    def __init__(self, context, namespaces, rgb):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from textdepth_ros.ros import topics
        from textdepth_ros.ros.conversions import numpy_to_image

        self.ros = rclpy.create_node("auto_text_bench", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.ros)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.msg = numpy_to_image(rgb, "rgb8")
        self.pubs = {ns: self.ros.create_publisher(Image, f"/{ns}/image", reliable) for ns in namespaces}
        self.arrivals = {ns: [] for ns in namespaces}
        for ns in namespaces:
            self.ros.create_subscription(Image, f"/{ns}/{topics.DEPTH}", self._collector(ns), 10)
        self.stamp = 0

    def _collector(self, ns):
        return lambda _msg: self.arrivals[ns].append(time.monotonic())

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def wait_connected(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while any(p.get_subscription_count() == 0 for p in self.pubs.values()):
            if time.monotonic() > end:
                raise TimeoutError("the nodes did not subscribe")
            self.spin_for(0.1)

    def stream(self, ns: str, seconds: float, rate: float) -> tuple:
        """Frames to `ns` at `rate` for `seconds`; (depth intervals, their span in s) of the
        depth messages that arrived meanwhile: intervals / span is the depth FPS, exact to
        the arrival times (counting messages per window was too coarse at < 1 FPS)."""
        start = time.monotonic()
        next_at = start
        while time.monotonic() < start + seconds:
            if time.monotonic() >= next_at:
                self.stamp += 1
                self.msg.header.stamp.sec = self.stamp
                self.pubs[ns].publish(self.msg)
                next_at += 1.0 / rate
            self.spin_for(min(0.01, max(next_at - time.monotonic(), 0.0)))
        end = time.monotonic()
        times = [t for t in self.arrivals[ns] if start <= t <= end]
        return (len(times) - 1, times[-1] - times[0]) if len(times) > 1 else (0, 0.0)


def depth_fps(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="textdepth_auto_text_bench_"))
    ros_environment(tmp)
    import rclpy

    from textdepth_ros.ros.diagnostics import diagnostic_values
    from textdepth_ros.ros.node_process import READY_LINE, NodeProcess, depth_node_argv

    common = {"model_config": args.config, "device": args.device, "warmup_height": args.height,
              "warmup_width": args.width, "diagnostics_period": 0.5}
    nodes = {"off": NodeProcess(depth_node_argv(dict(common, text_source="topic"), namespace="/off"), tmp / "off.log"),
             "on": NodeProcess(depth_node_argv(dict(common, text_source="auto", auto_text_period=args.period),
                                               namespace="/on"), tmp / "on.log")}
    context = rclpy.Context()
    rclpy.init(context=context)
    client = None
    try:
        for node in nodes.values():
            node.wait_for_log(READY_LINE, args.start_timeout)
        client = TwoNodeClient(context, list(nodes), frame(args.height, args.width))
        diagnostics = {}
        from diagnostic_msgs.msg import DiagnosticArray

        client.ros.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diagnostics.update(
            diagnostic_values(m, "/on/depth_node") or {}), 10)
        client.wait_connected(60)
        for ns in nodes:  # first frames of this size in this process: not measured
            client.stream(ns, 4.0, args.rate)
        order = ["off", "on", "on", "off"] * args.rounds
        windows = {"off": [], "on": []}
        for ns in order:
            intervals, span = client.stream(ns, args.window, args.rate)
            windows[ns].append((intervals, span))
            print(f"[fps] {ns:>3}: {intervals / span if span else 0:.3f} depth/s ({intervals} intervals)", flush=True)
        client.spin_for(1.0)
    finally:
        if client is not None:
            client.executor.shutdown()
            client.ros.destroy_node()
        rclpy.try_shutdown(context=context)
        for node in nodes.values():
            node.stop()
    fps = {ns: sum(n for n, _ in w) / max(sum(s for _, s in w), 1e-9) for ns, w in windows.items()}
    pairs = [on / off for on, off in zip(per_window(windows["on"]), per_window(windows["off"])) if off]
    ratio = fps["on"] / fps["off"]
    print(f"[fps] depth FPS, {args.config} on {args.device}, {args.height}x{args.width}, {len(order)} windows of "
          f"{args.window:g} s: off {fps['off']:.3f}, on {fps['on']:.3f} (auto_text_period {args.period:g} s: "
          f"{diagnostics.get('auto_text_decisions', '?')} decisions, {diagnostics.get('auto_text_ms_mean', '?')} ms "
          f"each on average)")
    if pairs:
        print(f"[fps] window by window on / off: median {statistics.median(pairs):.3f}, range {min(pairs):.3f}-"
              f"{max(pairs):.3f} (the spread is the machine's noise)")
    print(f"[fps] on / off = {ratio:.3f}  ({verdict(ratio, FPS_TARGET, higher_is_better=True)})")
    return {"fps_off": fps["off"], "fps_on": fps["on"], "fps_ratio": ratio, "window_ratios": pairs,
            "decisions": diagnostics}


def per_window(windows) -> list:
    return [n / s if s else 0.0 for n, s in windows]


def main(argv=None) -> dict:
    args = parse_args(argv)
    result = {}
    if args.what in ("cost", "both"):
        result["cost"] = decision_cost(args)
    if args.what in ("fps", "both"):
        result["fps"] = depth_fps(args)
    return result


if __name__ == "__main__":
    main()
