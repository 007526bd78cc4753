"""depth_node as a real process over real DDS, against the bare model forward, in one run.

(a) end-to-end latency, one frame at a time: image published -> depth received;
(b) the bare forward of the same model (same weights, config, device, precision, CUDA
    graphs / compile) in this process: DepthEstimator.device_forward on the same bytes
    until the outputs are ready on the device; no ROS, no copy back.
    (a) and (b) alternate frame by frame so machine noise hits both alike.
    Target: median(a) / median(b) <= 1.10.
(c) no backlog: images published at each --rate (Hz) for --stream-seconds; the age of
    each output (receive time - publish time of its input) against 2 x the bare
    forward, plus frames sent / received / published / dropped (node's /diagnostics);
(d) end-to-end FPS under each stream;
(e) with --restart: the node's start-up time (process start -> ready), then that of a
    second start with the same parameters (with --compile: the torch.compile cache on
    disk from the first start).

Default: tiny config, random weights, 480x640, device auto. For the paper config with
random weights the bench writes a random-weight checkpoint first (~1.6 GB):
    python node_bench.py --config paper --device cuda --fp16 --rate 60,120
"""
import argparse
import json
import queue
import tempfile
import threading
import time
from pathlib import Path

from common import add_model_arguments, dist, fmt, keep_freed_buffers, ros_environment, verdict

from textdepth_ros.ros.node_process import READY_LINE, NodeProcess, depth_node_argv
from textdepth_ros.ros.spinning import EXECUTORS


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--checkpoint", help="checkpoint for both the node and the bare model "
                        "(default: a random-weight checkpoint of --config, written to a temp dir)")
    parser.add_argument("--fp16", action="store_true", help="half autocast (fp16 on CUDA, bf16 on CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network, in the node and here")
    parser.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=True,
                        help="CUDA graphs in the node and here (default on; no-op on CPU)")
    parser.add_argument("--compile-cache", default="",
                        help="torch.compile cache folder for the node and here (default: the node's default)")
    parser.add_argument("--frames", type=int, default=12, help="timed one-at-a-time frames (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames first (default %(default)s)")
    parser.add_argument("--rate", default="30", help="stream rate(s) in Hz, comma-separated (default %(default)s)")
    parser.add_argument("--stream-seconds", type=float, default=10.0, help="length of each stream (default %(default)s)")
    parser.add_argument("--restart", action="store_true", help="also time a second start of the node (e)")
    parser.add_argument("--profile", action="store_true",
                        help="also count operators / GPU kernels of the bare forward and compare its depth with "
                             "the eager forward of the same precision")
    parser.add_argument("--no-cloud", action="store_true", help="do not subscribe to points (the node then skips it)")
    parser.add_argument("--tuned-client", action="store_true",
                        help="this process (the client) keeps freed multi-MB buffers (glibc mallopt): its own "
                             "receive of depth and cloud costs less (docs/performance.md)")
    parser.add_argument("--text", default="a living room with a sofa", help="scene text (default %(default)r)")
    parser.add_argument("--start-timeout", type=float, default=300.0,
                        help="seconds to wait for the node to be ready (model load, warm-up, compilation; default %(default)s)")
    parser.add_argument("--executor", choices=EXECUTORS, default="auto",
                        help="the node's `executor` parameter (default %(default)s)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    try:
        args.rates = [float(r) for r in str(args.rate).split(",") if r.strip()]
    except ValueError:
        parser.error(f"--rate takes numbers separated by commas, got {args.rate!r}")
    return args


def test_image(height: int, width: int):
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    return np.clip(np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), np.full_like(xx, 128)], -1)
                   + rng.integers(-20, 20, (height, width, 3)), 0, 255).astype(np.uint8)


class BareForward:
    """The bare forward on a worker thread, as the node runs it (on this shared 2-core
    machine, forwards on the main thread had multi-second outliers under outside load
    that worker threads did not)."""

    def __init__(self, estimator, rgb, text):
        import torch

        sync = torch.cuda.synchronize if estimator.device.type == "cuda" else (lambda: None)
        self.requests, self.replies = queue.Queue(), queue.Queue()

        def forward() -> float:
            start = time.perf_counter()
            estimator.device_forward(rgb, text)
            sync()
            return time.perf_counter() - start

        def serve():
            while self.requests.get() is not None:
                try:
                    self.replies.put(forward())
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    self.replies.put(exc)

        threading.Thread(target=serve, name="bare_forward", daemon=True).start()

    def __call__(self) -> float:
        self.requests.put(True)
        reply = self.replies.get()
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def close(self):
        self.requests.put(None)


def wait_ready(node, started: float, timeout: float) -> float:
    """Seconds from the node's process start (`started`, monotonic) to its ready line."""
    try:
        node.wait_for_log(READY_LINE, timeout)
    except BaseException:
        node.stop(timeout=10)
        raise
    return time.monotonic() - started


def node_summary_lines(node) -> list:
    """What the node said about its model, warm-up (CUDA graphs on or off, times) and executor."""
    keys = ("model:", "warm-up", "CUDA graph", "compile", "spinning on")
    return [line.strip() for line in node.log().splitlines() if any(k in line for k in keys)][:7]


def profile_and_compare(estimator, model, rgb, args) -> dict:
    """Operators / kernels of one bare forward (uncaptured: the kernels a replay runs), and
    its depth against the eager forward of the same precision on the same image."""
    import torch

    from profiling import count_ops, uncaptured_forward
    from textdepth_ros.serving.inference import DepthEstimator
    from textdepth_ros.metrics import max_rel_diff

    sync = torch.cuda.synchronize if estimator.device.type == "cuda" else None
    ops = count_ops(lambda: uncaptured_forward(estimator, rgb, args.text, sync), estimator.device)
    eager = DepthEstimator(model=model, device=str(estimator.device), fp16=args.fp16, cuda_graphs=False)
    ref = eager.predict(rgb, args.text).depth
    diff = max_rel_diff(estimator.predict(rgb, args.text).depth, ref)
    print(f"[node] bare forward: per forward {ops}; max rel. depth difference vs eager {diff:.2e}")
    return {"ops_per_forward": ops, "max_rel_diff_vs_eager": diff}


def main(argv=None):
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="textdepth_node_bench_"))
    ros_environment(tmp)

    import rclpy
    import torch

    from textdepth_ros.devices import resolve_device
    from textdepth_ros.serving.inference import DepthEstimator
    from textdepth_ros.model import build_model
    from textdepth_ros.model.checkpoint import load_checkpoint, save_checkpoint
    from node_client import BenchClient

    device, warning = resolve_device(args.device)
    if warning:
        print(f"[node] {warning}")
    if args.tuned_client:
        print(f"[node] client keeps freed buffers (glibc mallopt): {keep_freed_buffers()}")
    H, W = args.height, args.width
    # The same weights on both sides: the node loads the checkpoint the bare model comes from.
    checkpoint = args.checkpoint or str(tmp / f"random_{args.config.replace('/', '_')}.safetensors")
    params = {"model_config": args.config, "checkpoint": checkpoint, "device": str(device), "fp16": bool(args.fp16),
              "compile": bool(args.compile), "cuda_graphs": bool(args.cuda_graphs),
              "compile_cache_dir": args.compile_cache or "", "default_text": f'"{args.text}"',
              "warmup_height": H, "warmup_width": W, "diagnostics_period": 0.5, "executor": args.executor}

    def spawn(log_name):
        return NodeProcess(depth_node_argv(params), tmp / log_name), time.monotonic()

    node, context, result, bare_forward = None, None, {}, None
    try:
        if args.checkpoint:  # the node starts loading while this process loads the same file
            (node, started), (model, _) = spawn("depth_node.log"), load_checkpoint(args.checkpoint)
        else:
            model = build_model(args.config, pretrained=False)
            save_checkpoint(checkpoint, model)
            node, started = spawn("depth_node.log")
        estimator = DepthEstimator(model=model, device=str(device), fp16=args.fp16, compile=args.compile,
                                   cuda_graphs=args.cuda_graphs, compile_cache=args.compile_cache, checkpoint=checkpoint)
        rgb = test_image(H, W)
        bare_forward = BareForward(estimator, rgb, args.text)
        ready_s = wait_ready(node, started, args.start_timeout)
        print(f"[node] node ready {ready_s:.1f} s after its start; it said:")
        for line in node_summary_lines(node):
            print(f"[node]   {line}")
        start = time.perf_counter()
        bare_forward()  # here: compilation (from the node's cache when --compile) and capture
        print(f"[node] bare forward here: first call {time.perf_counter() - start:.1f} s; {estimator.describe()}")
        name = f"{model.config.get('name', args.config)} {H}x{W} on {estimator.describe().split(' on ', 1)[1]}"
        if device.type == "cuda":
            name += f" ({torch.cuda.get_device_name(device)})"
        context = rclpy.Context()
        rclpy.init(context=context)
        client = BenchClient(context, node, rgb, with_cloud=not args.no_cloud)
        print(f"[node] {name}; node log: {node.log_path}")

        # (a) + (b), interleaved; the first frames of each are warm-up.
        for _ in range(args.warmup):
            client.one_frame()
            bare_forward()
        e2e, bare, cloud = [], [], []
        for i in range(args.frames):
            if i % 2 == 0:
                key = client.one_frame()
                bare.append(bare_forward())
            else:
                bare.append(bare_forward())
                key = client.one_frame()
            e2e.append(client.arrivals["depth"][key] - client.sent[key])
            if not args.no_cloud:
                cloud.append(client.arrivals["points"][key] - client.sent[key])
        d_e2e, d_bare, d_cloud = dist(e2e), dist(bare), dist(cloud)
        ratio = d_e2e["median_ms"] / d_bare["median_ms"]
        print(f"[node] end-to-end image->depth (one at a time): {fmt(d_e2e)}")
        if cloud:
            print(f"[node] end-to-end image->points (same frames):  {fmt(d_cloud)}")
        print(f"[node] bare model forward (same run, interleaved): {fmt(d_bare)}")
        print(f"[node] node overhead ratio e2e/bare = {ratio:.3f} ({verdict(ratio, 1.10)})")

        extra = profile_and_compare(estimator, model, rgb, args) if args.profile else {}

        # (c) + (d): streams, each faster than or close to the model.
        streams = [client.stream(rate, args.stream_seconds, d_bare) for rate in args.rates]
        result = {
            "name": name, "config": args.config, "device": str(device), "precision": estimator.describe(),
            "cuda_graphs": estimator.uses_cuda_graphs, "compile": bool(args.compile), "height": H, "width": W,
            "node_ready_s": ready_s, "node_said": node_summary_lines(node),
            "e2e": d_e2e, "e2e_points": d_cloud, "bare_forward": d_bare, "overhead_ratio": ratio,
            "overhead_target": 1.10, "overhead_meets": ratio <= 1.10,
            "streams": streams, "stream": streams[0] if streams else {},
            "backlog_meets": all(s["max_age_over_two_forward"] <= 1.0 for s in streams), **extra,
        }
        client.close()
        if args.restart:  # (e): the same node again; with --compile its cache is warm now
            node.stop(timeout=20)
            node, started = spawn("depth_node_restart.log")
            restart_s = wait_ready(node, started, args.start_timeout)
            result["node_restart_ready_s"] = restart_s
            print(f"[node] start-up: first start ready after {ready_s:.1f} s, restart after {restart_s:.1f} s "
                  f"(restart / first = {restart_s / ready_s:.2f})")
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return result
    finally:
        if bare_forward is not None:
            bare_forward.close()
        if context is not None:
            rclpy.try_shutdown(context=context)
        if node is not None:
            node.stop(timeout=20)
        if not args.checkpoint:
            for leftover in tmp.glob("*.safetensors"):
                leftover.unlink()


if __name__ == "__main__":
    main()
