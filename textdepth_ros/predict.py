"""Depth of one image with a scene description: writes float32 metres (.npy, same
height and width as the image) and a colorized preview PNG beside it.

Without --checkpoint the network runs with untrained weights (random decoder; Swin and
CLIP only where the config names pretrained files): the output shows the pipeline
works, not the scene's depth. Train one with `textdepth train` or put a checkpoint in
model/ (see model/README.md).
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np


def add_arguments(parser):
    parser.add_argument("--config", default="tiny",
                        help="model config (name under config/model or YAML path); ignored with --checkpoint, "
                             "which carries its own; default %(default)s")
    parser.add_argument("--checkpoint", help="trained weights (.safetensors written by textdepth train)")
    parser.add_argument("--image", required=True, help="input image (any format OpenCV reads)")
    parser.add_argument("--text", default="", help='scene description, e.g. "a bedroom with a bed and a desk"')
    parser.add_argument("--out", required=True, help="output .npy (float32 metres); the preview goes to OUT.png")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default %(default)s)")
    parser.add_argument("--fp16", action="store_true", help="half precision: fp16 autocast on CUDA, bf16 on CPU")
    parser.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=True,
                        help="on CUDA, capture the forward in a CUDA graph (default on; no-op on CPU)")
    parser.add_argument("--uncertainty", action="store_true",
                        help="also write OUT_uncertainty.npy (std of the bin distribution, metres)")


def run(args) -> int:
    from textdepth_ros.errors import UserError
    from textdepth_ros.inference import DepthEstimator
    from textdepth_ros.preview import save_preview

    image_path, out = Path(args.image), Path(args.out)
    if out.suffix != ".npy":
        raise UserError(f"--out must end in .npy, got {out}")
    if not image_path.is_file():
        raise UserError(f"image not found: {image_path}")
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"cannot read image {image_path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    estimator = DepthEstimator(args.config, checkpoint=args.checkpoint, device=args.device, fp16=args.fp16,
                               cuda_graphs=args.cuda_graphs)
    if estimator.untrained:
        print("WARNING: no --checkpoint: UNTRAINED weights, the depth below is not the scene's depth.", file=sys.stderr)
    prediction = estimator.predict(rgb, args.text)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, prediction.depth.astype(np.float32))
    preview = out.with_suffix(".png")
    save_preview(preview, prediction.depth, *estimator.depth_limits)
    written = [str(out), str(preview)]
    if args.uncertainty:
        unc = out.with_name(out.stem + "_uncertainty.npy")
        np.save(unc, prediction.uncertainty.astype(np.float32))
        written.append(str(unc))
    d = prediction.depth
    print(f"{estimator.describe()}: {d.shape[1]}x{d.shape[0]} depth {d.min():.2f}..{d.max():.2f} m "
          f"in {prediction.forward_ms:.0f} ms -> {', '.join(written)}")
    return 0
