"""Focal scaling, the two ways Metric3D describes (docs/camera-scale.md), measured in one run:

  scale  the network runs on the camera's image as it is; depth and uncertainty are
         multiplied by f_camera / f_train, the focal lengths compared at the training
         image size, i.e. fields of view (what the node, predict, eval and bag-eval do);
         or, the alternative, compared in pixels of the image the network saw
  resize the image is resized by f_train / f_camera, so its focal length in pixels is the
         training one; the network runs on that; depth and uncertainty are resized back

Cost (any model, --height x --width, default 480x640): per factor, each way's time per
frame over the plain forward at the camera's size (ratios from the same run).

Exactness (--checkpoint: a model trained on `make-dataset` rooms, which records its
training camera): generated rooms of the same kinds, seen by cameras whose focal length
is k x the training one at the training image size, scored (abs_rel, and the median of
prediction / ground truth: the scale bias) with no correction, scale and resize; and the
same views at twice the training size with the same field of view (focal 2x in pixels)
and their centre half at the training focal length (a crop): the cases that tell whether
the network's scale follows the focal length in pixels or the field of view.

  python bench/focal_scaling_bench.py                                  (cost only)
  python bench/focal_scaling_bench.py --checkpoint runs/f0/best_abs_rel.safetensors --views 24
"""
import argparse
import math
import time

import cv2
import numpy as np
from common import add_model_arguments, time_calls

from textdepth_ros.camera_scale import rescaled
from textdepth_ros.serving.inference import DepthEstimator
from textdepth_ros.metrics import evaluate_depth


def resize_way(estimator, rgb, text, k):
    """The resize way for a camera at k x the training focal length: image x 1/k, the
    network, depth and uncertainty back to the camera's size (no depth factor)."""
    height, width = rgb.shape[:2]
    size = (max(32, round(width / k)), max(32, round(height / k)))
    shrink = size[0] < width
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    pred = estimator.predict(small, text)
    depth = cv2.resize(pred.depth, (width, height), interpolation=cv2.INTER_LINEAR)
    uncertainty = cv2.resize(pred.uncertainty, (width, height), interpolation=cv2.INTER_LINEAR)
    return depth, uncertainty


def scale_way(estimator, rgb, text, k):
    pred = rescaled(estimator.predict(rgb, text), k)
    return pred.depth, pred.uncertainty


def cost(estimator, height, width, factors, repeats) -> dict:
    rgb = (np.random.default_rng(0).random((height, width, 3)) * 255).astype(np.uint8)
    text = "a photo of a living room"
    plain = np.median(time_calls(lambda: estimator.predict(rgb, text), repeats, warmup=1))
    pred = estimator.predict(rgb, text)
    multiply = np.median(time_calls(lambda: rescaled(pred, 1.25), repeats * 5, warmup=2))
    out = {"forward_ms": plain * 1e3, "multiply_ms": multiply * 1e3, "factors": {}}
    print(f"[focal cost] {estimator.describe()} at {height}x{width}: forward {plain * 1e3:.1f} ms; "
          f"the depth + uncertainty multiply {multiply * 1e3:.2f} ms (scale / forward "
          f"{(plain + multiply) / plain:.3f})")
    for k in factors:
        resize = np.median(time_calls(lambda: resize_way(estimator, rgb, text, k), repeats, warmup=1))
        size = f"{round(height / k)}x{round(width / k)}"
        out["factors"][k] = {"resize_ms": resize * 1e3, "resize_over_forward": resize / plain,
                             "resize_over_scale": resize / (plain + multiply)}
        print(f"[focal cost] camera at {k:g} x the training focal length: resize (network at {size}) / scale "
              f"= {resize / (plain + multiply):.2f}")
    return out


# -- exactness on generated rooms ----------------------------------------------------------
def views(count: int, seed: int = 11):
    """(scene type, room, pose, rng seed) of `count` views: the same ones for every camera."""
    from textdepth_ros.data.generate import SCENES, _rotation, make_room

    rng = np.random.default_rng(seed)
    types = list(SCENES)
    out = []
    for i in range(count):
        scene = types[i % len(types)]
        room = make_room(rng, scene)
        rotation = _rotation(rng.uniform(-0.35, 0.35), rng.uniform(-0.12, 0.08))
        eye = (rng.uniform(-0.3, 0.3), 0.0, rng.uniform(-0.3, 0.3))
        out.append((scene, room, rotation, eye, int(rng.integers(1 << 30))))
    return out


def render_view(view, focal, height, width):
    """rgb, depth of a view by a camera of `focal` px at height x width (principal point
    where the training camera, NYU's Kinect scaled, has it)."""
    from textdepth_ros.data.generate import MAX_DEPTH, MIN_DEPTH
    from textdepth_ros.data.nyu import NYU_INTRINSICS as N
    from textdepth_ros.data.synthetic_scene import render

    _, room, rotation, eye, seed = view
    cx, cy = N["cx"] * width / N["width"], N["cy"] * height / N["height"]
    rgb, depth = render(room, (focal, focal, cx, cy), height, width, eye, rotation, np.random.default_rng(seed))
    return rgb, np.clip(depth, MIN_DEPTH, MAX_DEPTH)


def score(pred, gt) -> tuple:
    m = evaluate_depth(pred, gt, crop=None)
    valid = (gt > 1e-3) & (gt < 10)
    return m["abs_rel"], float(np.median(pred[valid] / gt[valid]))


def exactness(estimator, factors, count) -> dict:
    """Each camera case scored four ways: no correction; depth x the ratio of focal lengths
    in pixels of the images the network saw ("pixels"); depth x that ratio with the input's
    focal length first brought to the training image size ("fov": f x sqrt(W_train H_train
    / (W H)), comparing fields of view: what the code does, camera_scale.py); resize."""
    camera = estimator.training_camera
    if camera is None:
        raise SystemExit("--checkpoint records no training camera (textdepth set-camera)")
    height, width, f_train = camera.height, camera.width, camera.focal
    chosen = views(count)
    # name -> (focal factor, render size factor, centre crop fraction)
    cases = {f"{k:g} x focal, {width}x{height}": (k, 1, 1) for k in factors}
    cases[f"same field of view at 2 x size ({2 * width}x{2 * height})"] = (2.0, 2, 1)
    cases[f"centre half, same focal px ({width // 2}x{height // 2})"] = (1.0, 1, 2)
    ways = ("none", "pixels", "fov", "resize")
    rows = {}
    for name, (k, grow, crop) in cases.items():
        sums = {way: np.zeros(2) for way in ways}
        for view in chosen:
            rgb, gt = render_view(view, k * f_train, grow * height, grow * width)
            if crop > 1:
                h, w = rgb.shape[0] // crop, rgb.shape[1] // crop
                top, left = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
                rgb, gt = rgb[top:top + h, left:left + w].copy(), gt[top:top + h, left:left + w].copy()
            text = f"a photo of a {view[0].replace('_', ' ')}"
            plain = estimator.predict(rgb, text).depth
            pixels = k  # the image's focal length in pixels over the training one
            size = k * math.sqrt(width * height / (rgb.shape[0] * rgb.shape[1]))
            sums["none"] += score(plain, gt)
            sums["pixels"] += score(plain * np.float32(pixels), gt)
            sums["fov"] += score(plain * np.float32(size), gt)
            sums["resize"] += score(resize_way(estimator, rgb, text, pixels)[0], gt)
        rows[name] = {way: {"abs_rel": s[0] / len(chosen), "median_ratio": s[1] / len(chosen)}
                      for way, s in sums.items()}
    print(f"[focal exactness] {len(chosen)} generated views per case; training camera {camera.describe()}; "
          "abs_rel (median of prediction / ground truth)")
    print(f"[focal exactness] {'camera':<46}" + "".join(f"{w:>20}" for w in ways))
    for name, r in rows.items():
        cells = "".join(f"{r[w]['abs_rel']:>12.3f} ({r[w]['median_ratio']:.3f})" for w in ways)
        print(f"[focal exactness] {name:<46}{cells}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, device="cpu")
    parser.add_argument("--checkpoint", help="a model trained on make-dataset rooms, recording its camera")
    parser.add_argument("--factors", default="0.75,1.185,1.5",
                        help="camera focal / training focal (default %(default)s; 1.185: a RealSense D435 colour "
                             "camera, ~615 px, against NYU's 518.86 px at 640x480)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cost row (default %(default)s)")
    parser.add_argument("--views", type=int, default=24, help="generated views per camera (default %(default)s)")
    parser.add_argument("--no-cost", action="store_true", help="skip the cost rows")
    args = parser.parse_args(argv)
    factors = [float(f) for f in args.factors.split(",")]
    if any(not (0.25 <= f <= 4 and math.isfinite(f)) for f in factors):
        parser.error("factors must lie in 0.25..4")
    start = time.monotonic()
    estimator = DepthEstimator(args.config, checkpoint=args.checkpoint, device=args.device)
    result = {} if args.no_cost else {"cost": cost(estimator, args.height, args.width, factors, args.repeats)}
    if args.checkpoint:
        result["exactness"] = exactness(estimator, factors, args.views)
    print(f"[focal] {time.monotonic() - start:.0f} s")
    return result


if __name__ == "__main__":
    main()
