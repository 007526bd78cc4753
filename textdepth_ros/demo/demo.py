"""Run depth_node on a generated room sequence through real ROS 2 topics.

Starts the node as a separate process with the demo model (model/demo/, trained on
generated rooms by `textdepth demo-model`; see model/demo/README.md), publishes 10
rendered RGB frames with camera_info and a scene description that changes halfway
(demo/room.py: the same pictures, a room twice as large), collects depth and point
clouds, and writes to --out:
  depth_NNNN.png     colorized predicted depth (near = red, far = blue)
  compare_NNNN.png   input | predicted depth | ground-truth depth, one colour scale
  cloud.ply          the point cloud of the last frame (binary PLY, XYZ + RGB)
  summary.json       AbsRel/RMSE/delta1 of every frame against its exact ground truth, the
                     median depth before and after the text change, frames sent/received,
                     drops, latency vs bare forward, encoder calls
  node.log           the node's own log

The demo model knows generated rooms seen by one camera, nothing else: it is not for real
cameras. Real weights: import PixelFormer's NYU checkpoint (textdepth import-pixelformer,
then --checkpoint model/pixelformer_nyu.safetensors) or train on NYU Depth v2.
"""
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from textdepth_ros.demo.room import TEXTS
from textdepth_ros.errors import UserError
from textdepth_ros.metrics import evaluate_depth
from textdepth_ros.paths import config_dir, imported_checkpoint, weights_dir
from textdepth_ros.preview import colorize_depth
from textdepth_ros.ros.fastdds_profile import use_shm_profile
from textdepth_ros.ros.node_process import READY_LINE, NodeProcess, depth_node_argv

NAMESPACE = "/textdepth_demo"
DEMO_CHECKPOINT = "demo/rooms_micro.safetensors"  # in the model folder; `make demo-model` writes it
DEMO_SIZE = (96, 128)  # the demo model's training images: the size it knows
NOT_FOR_REAL_CAMERAS = ("trained on generated rooms only: not for real cameras (real weights: textdepth "
                        "import-pixelformer, or train on NYU Depth v2)")


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--frames", type=int, default=10, help="frames to send (default 10)")
    parser.add_argument("--height", type=int, default=DEMO_SIZE[0],
                        help=f"image height (default {DEMO_SIZE[0]}: the demo model's training size)")
    parser.add_argument("--width", type=int, default=DEMO_SIZE[1],
                        help=f"image width (default {DEMO_SIZE[1]}: the demo model's training size)")
    parser.add_argument("--config", default="tiny", help="model config when no checkpoint is used (default tiny)")
    parser.add_argument("--checkpoint", default="auto",
                        help=f"trained checkpoint (.safetensors); 'auto' (default): the demo model, model/{DEMO_CHECKPOINT} "
                             "(trained on generated rooms), else model/pixelformer_nyu.safetensors or "
                             "model/pixelformer_kitti.safetensors if imported (textdepth import-pixelformer), else "
                             "untrained weights; 'none': untrained weights")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0,
                        help="untrained weights are drawn from this seed (default 0: every run the same network)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the node")


def choose_checkpoint(value: str, folder=None) -> str:
    """--checkpoint as the node gets it: 'auto' -> the demo model, else an imported
    PixelFormer checkpoint in model/ (or `folder`), 'none' or nothing found -> '' (untrained)."""
    if value == "auto":
        demo = (Path(folder) if folder is not None else weights_dir()) / DEMO_CHECKPOINT
        if demo.is_file():
            return str(demo)
        found = imported_checkpoint(folder)
        return str(found) if found else ""
    return "" if value in ("none", "") else value


def ros_environment() -> dict:
    """Loopback-only discovery, a private domain and log dir unless the user set them."""
    env = os.environ
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    use_shm_profile(env)  # this process and the node: large images without latency spikes
    return env


def start_node(args, out: Path) -> NodeProcess:
    params = {"model_config": args.config, "checkpoint": args.checkpoint, "device": args.device, "seed": args.seed,
              "warmup_height": args.height, "warmup_width": args.width, "diagnostics_period": 0.25}
    return NodeProcess(depth_node_argv(params, config_dir() / "depth.yaml", NAMESPACE), out / "node.log")


def wait_ready(proc: NodeProcess, timeout: float) -> None:
    try:
        proc.wait_for_log(READY_LINE, timeout)
    except RuntimeError:
        lines = [l for l in proc.log().splitlines() if "cannot start" in l or "ERROR" in l or "FATAL" in l]
        raise UserError(f"the node exited ({proc.proc.returncode}): {lines[-1] if lines else proc.log()[-500:]}") from None
    except TimeoutError:
        raise UserError(f"the node was not ready after {timeout:.0f} s (see {proc.log_path})") from None


def write_ply(path: Path, cloud_points: np.ndarray) -> int:
    """Binary little-endian PLY of the finite points of an organized XYZRGB cloud."""
    flat = cloud_points.reshape(-1)
    keep = np.isfinite(flat["x"]) & np.isfinite(flat["y"]) & np.isfinite(flat["z"])
    flat = flat[keep]
    vertex = np.zeros(len(flat), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                        ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = flat["x"], flat["y"], flat["z"]
    if "rgb" in flat.dtype.names:
        packed = np.ascontiguousarray(flat["rgb"]).view("<u4")
        vertex["red"], vertex["green"], vertex["blue"] = packed >> 16 & 255, packed >> 8 & 255, packed & 255
    header = ("ply\nformat binary_little_endian 1.0\ncomment textdepth_ros demo, camera optical frame\n"
              f"element vertex {len(vertex)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    path.write_bytes(header.encode() + vertex.tobytes())
    return len(vertex)


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ros_environment()
    args.checkpoint = choose_checkpoint(args.checkpoint)
    weights = f"checkpoint {args.checkpoint}" if args.checkpoint else f"{args.config}, untrained weights"
    print(f"textdepth demo: starting depth_node ({weights}) on ROS domain {os.environ['ROS_DOMAIN_ID']} ...",
          flush=True)
    started = time.monotonic()
    proc = start_node(args, out)
    try:
        wait_ready(proc, args.timeout)
        from textdepth_ros.demo.client import exchange  # rclpy loads only here

        result = exchange(NAMESPACE, args, TEXTS, args.timeout)
    finally:
        code = proc.stop(timeout=20)
    summary = write_outputs(out, result, args)
    summary["node_exit_code"] = code
    summary["demo_seconds"] = round(time.monotonic() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_report(out, summary)
    return 0 if summary["depth_received"] == summary["frames_sent"] and code == 0 else 1


def accuracy(frames, depths: dict) -> dict:
    """Every received frame's metrics against its exact ground truth (eval's protocol, no
    crop), their means, and the median depth of each half (the text changes between them)."""
    per_frame = {}
    for i, frame in enumerate(frames):
        if i in depths:
            m = evaluate_depth(depths[i], frame.depth, crop=None)  # NaN -> the minimum, as eval does
            per_frame[i] = {"text": frame.text, **{k: round(float(m[k]), 4) for k in ("abs_rel", "rmse", "d1")}}
    halves = {}
    for label, text in zip(("before", "after"), TEXTS):
        got = [i for i in per_frame if frames[i].text == text]
        if got:
            halves[label] = {"text": text, "room_scale": frames[got[0]].scale,
                             "median_depth_m": round(float(np.median([np.nanmedian(depths[i]) for i in got])), 3),
                             "median_truth_m": round(float(np.median([np.median(frames[i].depth) for i in got])), 3)}
    mean = {k: round(float(np.mean([f[k] for f in per_frame.values()])), 4) if per_frame else None
            for k in ("abs_rel", "rmse", "d1")}
    ratio = (round(halves["after"]["median_depth_m"] / halves["before"]["median_depth_m"], 3)
             if len(halves) == 2 else None)
    return {"mean": mean, "per_frame": per_frame, "halves": halves, "median_depth_ratio_after_before": ratio}


def write_outputs(out: Path, result: dict, args) -> dict:
    frames, depths = result["frames"], result["depths"]
    lo, hi = np.percentile(np.concatenate([f.depth.ravel() for f in frames]), [2, 98])  # one colour scale for the whole sequence, prediction and truth
    for i, frame in enumerate(frames):
        if i not in depths:
            continue
        pred = colorize_depth(depths[i], lo, hi)
        truth = colorize_depth(frame.depth, lo, hi)
        cv2.imwrite(str(out / f"depth_{i:04d}.png"), cv2.cvtColor(pred, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / f"compare_{i:04d}.png"), cv2.cvtColor(np.hstack([frame.rgb, pred, truth]), cv2.COLOR_RGB2BGR))
    points = write_ply(out / "cloud.ply", result["cloud"]) if result["cloud"] is not None else 0
    latencies = np.array(result["latencies_ms"]) if result["latencies_ms"] else np.array([np.nan])
    diag = result["diagnostics"]
    return {
        "weights": "UNTRAINED (random init): depth values are not meaningful" if diag.get("untrained") == "true"
        else "trained checkpoint" + (f" ({NOT_FOR_REAL_CAMERAS})" if args.checkpoint.endswith(DEMO_CHECKPOINT) else ""),
        "accuracy": accuracy(frames, depths),
        "checkpoint": args.checkpoint or None,
        "model": diag.get("model"), "device": diag.get("device"),
        "image_size": [args.height, args.width], "texts": list(result["texts_sent"]),
        "frames_sent": len(frames), "depth_received": len(depths), "clouds_received": result["clouds_received"],
        "node_frames_received": int(diag.get("frames_received", 0)),
        "node_frames_dropped": int(diag.get("frames_dropped", 0)),
        "end_to_end_latency_ms": {"median": round(float(np.median(latencies)), 1), "max": round(float(np.max(latencies)), 1)},
        "node_latency_ms_mean": float(diag.get("latency_ms_mean", "nan")),
        "model_forward_ms_mean": float(diag.get("forward_ms_mean", "nan")),
        "encoder_calls": int(diag.get("encoder_calls", 0)),
        "cloud_ply_points": points,
        "depth_range_m": [round(float(lo), 3), round(float(hi), 3)],
    }


def print_report(out: Path, s: dict) -> None:
    print(f"  model: {s['model']}")
    if s["weights"].startswith("UNTRAINED"):
        print("  NOTE: the weights are UNTRAINED (no checkpoint): the depth maps show the ROS plumbing,")
        print(f"        not a trained model. The demo model is model/{DEMO_CHECKPOINT} (`make demo-model` trains")
        print("        it); or pass --checkpoint <file.safetensors>, or import PixelFormer's NYU weights to")
        print("        model/pixelformer_nyu.safetensors (see model/README.md).")
    else:
        print(f"  checkpoint: {s['checkpoint']}")
        if s["checkpoint"].endswith(DEMO_CHECKPOINT):
            print(f"  NOTE: the demo model is {NOT_FOR_REAL_CAMERAS}.")
    acc = s["accuracy"]
    if acc["mean"]["abs_rel"] is not None:
        print(f"  against the exact ground truth: AbsRel {acc['mean']['abs_rel']:.3f}, RMSE {acc['mean']['rmse']:.3f} m, "
              f"delta1 {acc['mean']['d1']:.3f} (mean over {len(acc['per_frame'])} frames)")
    for label, half in acc["halves"].items():
        print(f"  {label} the text change: \"{half['text']}\": median depth {half['median_depth_m']:.2f} m "
              f"(truth {half['median_truth_m']:.2f} m)")
    print(f"  frames sent {s['frames_sent']}, depth received {s['depth_received']}, clouds {s['clouds_received']}, "
          f"dropped by the node {s['node_frames_dropped']}")
    lat = s["end_to_end_latency_ms"]
    print(f"  latency publish->depth: median {lat['median']} ms, max {lat['max']} ms "
          f"(bare model forward {s['model_forward_ms_mean']:.0f} ms); text encoder calls {s['encoder_calls']}")
    print(f"  wrote {out}/: depth_*.png, compare_*.png (input | depth | ground truth), cloud.ply "
          f"({s['cloud_ply_points']} points), summary.json, node.log")
