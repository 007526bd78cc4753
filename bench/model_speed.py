"""Forward-pass speed of a model config in several precisions/forms, measured in one
run: fp32, fp16 (bf16 on CPU) autocast, channels_last, torch.compile. Prints FPS, the
ratio of each mode to fp32, and peak GPU memory. Random weights: speed only."""
import argparse
import json
import time

import torch
from common import summary, time_calls

from textdepth_ros.inference import autocast_dtype, resolve_device
from textdepth_ros.model import build_model

MODES = ("fp32", "fp16", "channels_last_fp16", "compile_fp16")


def run_mode(model, mode, images, text_embedding, device, repeats):
    amp = autocast_dtype(device, fp16=mode != "fp32")
    x = images
    net = model
    if "channels_last" in mode or "compile" in mode:
        net = model.to(memory_format=torch.channels_last)
        x = images.contiguous(memory_format=torch.channels_last)
    if "compile" in mode:
        net = torch.compile(net)
    sync = torch.cuda.synchronize if device.type == "cuda" else None

    def forward():
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            return net(x, text_embedding=text_embedding)["depth"]

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    forward()  # first call: compilation / autotune, reported apart
    if sync:
        sync()
    first_s = time.perf_counter() - start
    times = time_calls(forward, repeats, warmup=3, sync=sync)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    model.to(memory_format=torch.contiguous_format)
    return times, first_s, peak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="tiny", help="model config (default %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default %(default)s)")
    parser.add_argument("--height", type=int, default=480, help="input height (default %(default)s)")
    parser.add_argument("--width", type=int, default=640, help="input width (default %(default)s)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=20, help="timed forwards per mode (default %(default)s)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma list of %s" % ", ".join(MODES))
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    device, warning = resolve_device(args.device)
    if warning:
        print(warning)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    model = build_model(args.config, pretrained=False).eval().to(device)
    images = torch.rand(args.batch, 3, args.height, args.width, device=device)
    text_embedding = model.encode_text(["a photo of a living room"] * args.batch) if model.uses_text else None
    name = f"{model.config['name']} {args.height}x{args.width} b{args.batch} on {device}"
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    print(f"[model] {name}, torch {torch.__version__}")
    results, base = {}, None
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        if mode not in MODES:
            parser.error(f"unknown mode {mode}")
        try:
            times, first_s, peak = run_mode(model, mode, images, text_embedding, device, args.repeats)
        except Exception as exc:  # noqa: BLE001 - one failing mode must not hide the others
            print(f"[model] {mode:<20} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            continue
        median = sorted(times)[len(times) // 2]
        base = base or median
        fps = args.batch / median
        results[mode] = {"fps": fps, "median_ms": median * 1e3, "first_call_s": first_s, "peak_gib": peak,
                         "speedup_vs_fp32": base / median}
        print(f"[model] {mode:<20} {fps:8.1f} FPS  x{base / median:5.2f} vs fp32  {summary(times)}  "
              f"first call {first_s:.1f} s  peak {peak:.2f} GiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"name": name, "results": results}, f, indent=2)
    return results


if __name__ == "__main__":
    main()
