"""Half precision with the Linear/Conv2d weights cast once at load (what `fp16` serves
now, inference.cast_matmul_weights) against autocast casting the fp32 weights in every
forward (what it served before): the same depth bit for bit, and per forward the
operators, casts and (on a GPU) kernels, and the time, alternated call by call in one run.

A CUDA graph replays every kernel it captured, casts included, so on a GPU the kernel
count is the figure that matters; on this CPU only the counts and the CPU time are
measured. Default: paper config (its ~290 weight casts), random weights, 224x288, CPU
(bf16, the half type CPU autocast has; fp16 on CUDA).
"""
import argparse

from common import add_model_arguments


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, device="cpu")
    parser.set_defaults(config="paper", height=224, width=288)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per variant (default %(default)s)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from profiling import compare_estimators, report_comparison
    from textdepth_ros.serving.inference import DepthEstimator
    from textdepth_ros.model import build_model

    torch.manual_seed(0)
    model = build_model(args.config, pretrained=False)
    cast = DepthEstimator(model=model, device=args.device, fp16=True, cuda_graphs=False)  # its own cast copy
    per_forward = DepthEstimator(model=model, device=args.device, cuda_graphs=False)  # fp32 weights ...
    per_forward.amp_dtype = cast.amp_dtype  # ... under the same autocast
    variants = {"cast once": cast, "cast per forward": per_forward}
    rgb = (np.random.default_rng(0).random((args.height, args.width, 3)) * 255).astype(np.uint8)
    result = {"config": args.config, "size": [args.height, args.width], "device": str(cast.device),
              **compare_estimators(variants, rgb, "a living room with a sofa", args.repeats)}
    return report_comparison("half", result, f"{cast.describe()}, {args.height}x{args.width}", args.json)


if __name__ == "__main__":
    main()
