"""Depth of one image with a scene description: writes float32 metres (.npy, same
height and width as the image) and a colorized preview PNG beside it.

Without --checkpoint the network runs with untrained weights (random decoder; Swin and
CLIP only where the config names pretrained files): the output shows the pipeline
works, not the scene's depth. Train one with `textdepth train` or put a checkpoint in
model/ (see model/README.md).

With --fx (the camera's focal length in pixels, at this image's size) the depth is
mapped from the training camera the checkpoint records onto this camera
(--focal-scaling auto, the default; docs/camera-scale.md).

Images over --max-pixels are refused from the file's header, before decoding. The
outputs appear together or not at all: they are written under temporary names and
renamed when complete, so a full disk or an interrupt leaves no truncated file.
"""
import argparse
import io
import sys
from pathlib import Path

import numpy as np

from textdepth_ros.image_limits import DEFAULT_MAX_PIXELS, describe_limit


def add_arguments(parser):
    parser.add_argument("--config", default="tiny",
                        help="model config (name under config/model or YAML path); ignored with --checkpoint, "
                             "which carries its own; default %(default)s")
    parser.add_argument("--checkpoint", help="trained weights (.safetensors written by textdepth train)")
    parser.add_argument("--image", required=True, help="input image: JPEG, PNG, BMP, TIFF, PNM or WebP (told by its "
                                                        "content; other formats are refused before decoding)")
    parser.add_argument("--text", default="", help='scene description, e.g. "a bedroom with a bed and a desk"')
    parser.add_argument("--out", required=True, help="output .npy (float32 metres); the preview goes to OUT.png")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default %(default)s)")
    parser.add_argument("--fp16", action="store_true", help="half precision: fp16 autocast on CUDA, bf16 on CPU")
    parser.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=True,
                        help="on CUDA, capture the forward in a CUDA graph (default on; no-op on CPU)")
    parser.add_argument("--uncertainty", action="store_true",
                        help="also write OUT_uncertainty.npy (std of the bin distribution, metres)")
    parser.add_argument("--fx", type=float,
                        help="the camera's horizontal focal length in pixels, at this image's size: with a checkpoint "
                             "that records its training camera, depth x (camera focal / training focal)")
    parser.add_argument("--fy", type=float, help="vertical focal length in pixels (default: --fx); the geometric "
                                                 "mean of the two is compared")
    parser.add_argument("--focal-scaling", choices=["auto", "off"], default="auto",
                        help="auto: rescale whenever --fx and the checkpoint's camera are known; off: never "
                             "(default %(default)s)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse images with more pixels than this, checked in the file header before decoding "
                             f"(default {DEFAULT_MAX_PIXELS} = {describe_limit(DEFAULT_MAX_PIXELS)}; 0 = no limit)")


def run(args) -> int:
    from textdepth_ros.atomic_io import atomic_files
    from textdepth_ros.errors import UserError
    from textdepth_ros.image_limits import read_rgb
    from textdepth_ros.preview import save_preview

    out = Path(args.out)
    if out.suffix != ".npy":
        raise UserError(f"--out must end in .npy, got {out}")
    if args.max_pixels < 0:
        raise UserError(f"--max-pixels must be 0 (no limit) or positive, got {args.max_pixels}")
    if args.fy is not None and args.fx is None:
        raise UserError("--fy needs --fx")
    for name, value in (("--fx", args.fx), ("--fy", args.fy)):
        if value is not None and not 0 < value < float("inf"):
            raise UserError(f"{name} must be a positive focal length in pixels, got {value}")
    rgb = read_rgb(args.image, args.max_pixels)
    from textdepth_ros.serving.inference import DepthEstimator  # torch: only once the input is known to be usable

    estimator = DepthEstimator(args.config, checkpoint=args.checkpoint, device=args.device, fp16=args.fp16,
                               cuda_graphs=args.cuda_graphs)
    if estimator.untrained:
        print("WARNING: no --checkpoint: UNTRAINED weights, the depth below is not the scene's depth.", file=sys.stderr)
    prediction = estimator.predict(rgb, args.text)
    prediction = focal_scaled(estimator, prediction, args, rgb.shape[:2])
    targets = [out, out.with_suffix(".png")]
    if args.uncertainty:
        targets.append(out.with_name(out.stem + "_uncertainty.npy"))
    with atomic_files(*targets, what="prediction") as temps:
        save_npy(temps[0], prediction.depth)
        save_preview(temps[1], prediction.depth, *(d * prediction.scale for d in estimator.depth_limits))
        if args.uncertainty:
            save_npy(temps[2], prediction.uncertainty)
    d = prediction.depth
    print(f"{estimator.describe()}: {d.shape[1]}x{d.shape[0]} depth {d.min():.2f}..{d.max():.2f} m "
          f"in {prediction.forward_ms:.0f} ms -> {', '.join(map(str, targets))}")
    return 0


def save_npy(path, array: np.ndarray) -> None:
    """float32 .npy written by Python's own file I/O, so a full disk is an OSError with its
    errno ("No space left on device"); numpy's direct writes only report a short count."""
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32))
    Path(path).write_bytes(buffer.getbuffer())


def focal_scaled(estimator, prediction, args, size):
    """The prediction at the camera's scale (--fx/--fy, --focal-scaling), saying which on
    stdout whenever there is something to compare (--fx given, or a checkpoint camera)."""
    from textdepth_ros.camera_scale import FocalScaling, rescaled

    scaling = FocalScaling(args.focal_scaling, estimator.training_camera)
    if args.fx is None:
        factor, line = scaling.factor()
    else:
        height, width = size
        factor, line = scaling.factor(args.fx, args.fx if args.fy is None else args.fy, width, height)
    if args.fx is not None or estimator.training_camera is not None:
        print(line.replace("no focal length for the input yet", "no --fx given"))
    return rescaled(prediction, factor)
