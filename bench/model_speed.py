"""Forward-pass speed of a model config per precision and form, measured in one run.

Modes: fp32, fp16, bf16 (autocast; on CPU "fp16" means bf16), channels_last_fp16,
compile_fp16 (torch.compile), and the CUDA-graph forms graph_fp32, graph_fp16,
graph_bf16, compile_graph_fp16 (torch.compile, then the compiled forward captured in a
CUDA graph). Every mode runs the serving path of DepthEstimator: HxWx3 uint8 bytes in
(uploaded, converted on the device), outputs packed on the device; "forward" is that
until the outputs are ready on the device, "predict" adds the copy back into host
arrays. Graph modes also report their largest relative difference from the eager
forward of the same precision (same input), and --profile counts, for one forward of
each mode, the operators dispatched and the GPU kernels it launches (torch.profiler).
Random weights: speed only. On CPU the graph modes are skipped (no CUDA graphs)."""
import argparse
import gc
import json
import time

import numpy as np
import torch
from common import add_model_arguments, summary, time_calls
from profiling import count_ops, uncaptured_forward

from textdepth_ros.devices import resolve_device
from textdepth_ros.serving.inference import DepthEstimator
from textdepth_ros.metrics import max_rel_diff
from textdepth_ros.model import build_model

MODES = ("fp32", "fp16", "bf16", "channels_last_fp16", "compile_fp16",
         "graph_fp32", "graph_fp16", "graph_bf16", "compile_graph_fp16")


def mode_precision(mode: str) -> str:
    return next((p for p in ("fp16", "bf16") if mode.endswith(p)), "fp32")


def make_estimator(model, device, mode: str, compile_cache: str = "") -> DepthEstimator:
    precision = mode_precision(mode)
    estimator = DepthEstimator(model=model, device=str(device), fp16=precision != "fp32",
                               compile="compile" in mode, cuda_graphs="graph" in mode, compile_cache=compile_cache,
                               half_dtype=torch.bfloat16 if precision == "bf16" else None)
    if "channels_last" in mode:
        estimator.model.to(memory_format=torch.channels_last)  # half precision: the estimator's own copy
    return estimator


def run_mode(model, mode, rgb, text, device, repeats, profile_ops, reference, compile_cache=""):
    """Times one mode; returns its result dict and its depth (for the eager reference)."""
    estimator = make_estimator(model, device, mode, compile_cache)
    if "graph" in mode and not estimator.uses_cuda_graphs:
        return {"skipped": estimator.describe()}, None
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        start = time.perf_counter()
        first = estimator.predict(rgb, text)  # first call: compilation / autotune / capture, reported apart
        first_s = time.perf_counter() - start
        if "graph" in mode and not estimator.uses_cuda_graphs:
            return {"failed": f"capture failed: {estimator.describe()}"}, None
        forward = lambda: estimator.device_forward(rgb, text)  # noqa: E731
        times = time_calls(forward, repeats, warmup=2, sync=sync)
        predict_times = time_calls(lambda: estimator.predict(rgb, text), max(3, repeats // 3), warmup=1)
        result = {"description": estimator.describe(), "first_call_s": first_s,
                  "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}
        median = float(np.median(times))
        result.update(fps=1.0 / median, median_ms=median * 1e3, forward=summary(times),
                      predict_median_ms=float(np.median(predict_times)) * 1e3)
        base = reference.get(mode_precision(mode))
        if base is not None and mode != mode_precision(mode):
            result["max_rel_diff_vs_eager"] = max_rel_diff(first.depth, base)
        if profile_ops:
            result["ops_per_forward"] = count_ops(lambda: uncaptured_forward(estimator, rgb, text, sync), device)
            if estimator.uses_cuda_graphs:  # what the CPU does per frame with a graph: a few launches
                result["ops_per_replay"] = count_ops(lambda: (forward(), sync and sync()), device)
        return result, first.depth.copy()
    finally:
        del estimator
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--repeats", type=int, default=20, help="timed forwards per mode (default %(default)s)")
    parser.add_argument("--modes", default="fp32,fp16,graph_fp32,graph_fp16",
                        help="comma list of %s (default %%(default)s)" % ", ".join(MODES))
    parser.add_argument("--profile", nargs="?", const="all", default="",
                        help="count operators, GPU kernels and launch calls of one forward (torch.profiler), for "
                             "every mode or for a comma list of them (--profile fp16,graph_fp16)")
    parser.add_argument("--compile-cache", default="",
                        help="torch.compile cache folder (default: $TORCHINDUCTOR_CACHE_DIR or ~/.cache/textdepth_ros/torch_compile)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    device, warning = resolve_device(args.device)
    if warning:
        print(warning)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    model = build_model(args.config, pretrained=False).eval().to(device)
    rgb = (np.random.default_rng(0).random((args.height, args.width, 3)) * 255).astype(np.uint8)
    text = "a photo of a living room"
    name = f"{model.config['name']} {args.height}x{args.width} b1 on {device}"
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    print(f"[model] {name}, torch {torch.__version__}")
    results, reference, fp32_ms = {}, {}, None
    # Eager modes first: they are the reference each graph mode is compared with.
    for mode in sorted(modes, key=lambda m: ("graph" in m, "compile" in m)):
        try:
            profile = args.profile == "all" or mode in args.profile.split(",")
            result, depth = run_mode(model, mode, rgb, text, device, args.repeats, profile, reference,
                                     args.compile_cache)
        except Exception as exc:  # noqa: BLE001 - one failing mode must not hide the others
            result, depth = {"failed": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}, None
        results[mode] = result
        if "fps" not in result:
            print(f"[model] {mode:<20} {result}")
            continue
        if mode in ("fp32", "fp16", "bf16"):
            reference[mode] = depth
        fp32_ms = fp32_ms or (result["median_ms"] if mode == "fp32" else None)
        result["speedup_vs_fp32"] = fp32_ms / result["median_ms"] if fp32_ms else None
        extra = ""
        if "max_rel_diff_vs_eager" in result:
            extra += f"  max rel diff vs eager {result['max_rel_diff_vs_eager']:.2e}"
        if "ops_per_forward" in result:
            extra += f"  per forward: {result['ops_per_forward']}"
        peak = f"  peak {result['peak_gib']:.2f} GiB" if result["peak_gib"] is not None else ""
        print(f"[model] {mode:<20} {result['fps']:8.1f} FPS  {result['forward']}  (predict incl. copy back "
              f"{result['predict_median_ms']:.2f} ms)  first call {result['first_call_s']:.1f} s{peak}{extra}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"name": name, "torch": torch.__version__, "results": results}, f, indent=2)
    return results


if __name__ == "__main__":
    main()
