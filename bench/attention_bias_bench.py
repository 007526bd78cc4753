"""Window attentions keeping their additive mask (model/attention_bias.py, what the
estimator serves) against building it in every forward (what it served before): the same
depth bit for bit, and per forward the operators, casts and (on a GPU) kernels of the
program a CUDA graph replays, and the predict time, alternated call by call in one run.

On a GPU the estimators replay CUDA graphs (the served path), so the kernel count is the
figure that matters; on this CPU only the counts and the CPU time are measured. Default:
paper config (28 window attentions), random weights, 224x288, half precision (bf16 on CPU,
fp16 on CUDA), CPU.
"""
import argparse
import copy

from common import add_model_arguments


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, device="cpu")
    parser.set_defaults(config="paper", height=224, width=288)
    parser.add_argument("--fp32", action="store_true", help="full precision instead of half")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per variant (default %(default)s)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from profiling import compare_estimators, report_comparison
    from textdepth_ros.serving.inference import DepthEstimator
    from textdepth_ros.model import build_model
    from textdepth_ros.model.attention_bias import keep_attention_biases

    torch.manual_seed(0)
    model = build_model(args.config, pretrained=False)
    kept = DepthEstimator(model=model, device=args.device, fp16=not args.fp32)
    rebuilt = DepthEstimator(model=copy.deepcopy(model), device=args.device, fp16=not args.fp32)
    attentions = keep_attention_biases(rebuilt.model, False)
    variants = {"kept": kept, "per forward": rebuilt}
    rgb = (np.random.default_rng(0).random((args.height, args.width, 3)) * 255).astype(np.uint8)
    result = {"config": args.config, "size": [args.height, args.width], "device": str(kept.device),
              "attentions": attentions, **compare_estimators(variants, rgb, "a living room with a sofa", args.repeats)}
    return report_comparison("bias", result, f"{kept.describe()}, {args.height}x{args.width}, "
                             f"{attentions} window attentions", args.json)


if __name__ == "__main__":
    main()
