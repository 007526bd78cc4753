"""The node's two backends on the same frames: `backend: onnxruntime` (the file from
`textdepth export --onnx`) against `backend: torch`, both through their `predict` (what
the node's worker calls: uint8 image in, depth + uncertainty out), alternated call by
call in one run. Also the largest relative depth difference between them.

Default: tiny config, random weights, 480x640, CPU, fp32 (the precision the export has).
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from common import add_model_arguments, dist, fmt


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, device="cpu", device_help="cpu, or cuda for onnxruntime's GPU providers")
    parser.add_argument("--repeats", type=int, default=6, help="timed calls per backend (default %(default)s)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from textdepth_ros.serving.export import export_onnx
    from textdepth_ros.serving.inference import DepthEstimator
    from textdepth_ros.metrics import max_rel_diff
    from textdepth_ros.model import build_model
    from textdepth_ros.model.checkpoint import save_checkpoint
    from textdepth_ros.serving.onnx_runtime import OnnxDepthEstimator

    tmp = Path(tempfile.mkdtemp(prefix="textdepth_onnx_bench_"))
    torch.manual_seed(0)
    model = build_model(args.config, pretrained=False)
    checkpoint = save_checkpoint(tmp / "m.safetensors", model)
    start = time.perf_counter()
    export_onnx(model, tmp / "m.onnx", args.height, args.width)
    export_s = time.perf_counter() - start
    torch_backend = DepthEstimator(checkpoint=checkpoint, device=args.device, cuda_graphs=False)
    onnx_backend = OnnxDepthEstimator(tmp / "m.onnx", args.config, checkpoint, args.device)
    rgb = (np.random.default_rng(0).random((args.height, args.width, 3)) * 255).astype(np.uint8)
    text = "a living room with a sofa"
    reference, candidate = torch_backend.predict(rgb, text), onnx_backend.predict(rgb, text)  # warm-up
    diff = max_rel_diff(candidate.depth, reference.depth)
    times = {"torch": [], "onnxruntime": []}
    for i in range(args.repeats):
        order = (("torch", torch_backend), ("onnxruntime", onnx_backend))
        for name, backend in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            backend.predict(rgb, text)
            times[name].append(time.perf_counter() - start)
    d = {name: dist(t) for name, t in times.items()}
    ratio = d["onnxruntime"]["median_ms"] / d["torch"]["median_ms"]
    print(f"[onnx] {args.config} {args.height}x{args.width} on {args.device}, fp32; export took {export_s:.1f} s; "
          f"onnxruntime {onnx_backend.describe()}")
    for name in times:
        print(f"[onnx] {name:<12} predict: {fmt(d[name])}")
    print(f"[onnx] onnxruntime / torch predict time = {ratio:.3f}; max rel. depth difference {diff:.1e}")
    result = {"config": args.config, "device": args.device, "height": args.height, "width": args.width,
              "export_s": export_s, "torch": d["torch"], "onnxruntime": d["onnxruntime"], "ratio": ratio,
              "max_rel_diff": diff, "onnx_describe": onnx_backend.describe()}
    for leftover in tmp.iterdir():
        leftover.unlink()
    tmp.rmdir()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
