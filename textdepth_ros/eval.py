"""Evaluate depth on NYU Depth v2 (or KITTI) under PixelFormer's protocol (Eigen crop,
clamping to [1e-3, 10] m, flip test-time augmentation as its post_process_depth,
per-image metrics averaged over images). KITTI (--dataset kitti, BTS's Eigen test list):
depth PNG / 256 under --gt-root, image and ground truth KB-cropped to 352x1216, Garg crop
of that (--crop eigen for KITTI's Eigen crop), 1e-3..80 m, as PixelFormer's
configs/arguments_eval_kittieigen.txt runs it (data/kitti.py says where that differs
from BTS's original evaluation).

Inputs, one of:
  --checkpoint CKPT          a textdepth_ros checkpoint (.safetensors)
  --pred-dir P               predictions of any other method: float32 metres in .npy at
                             P/<the list's rgb path with .npy>, e.g.
                             P/bathroom/rgb_00045.npy, same size as the ground truth
                             (KITTI: 352x1216, the KB crop's; a full-frame one is cut to it)
Data, one of:
  --data-root D --test-list L   BTS/PixelFormer layout (e.g. nyudepthv2_test_files_with_gt.txt)
  --nyu-mat nyu_depth_v2_labeled.mat   the official 654 test images straight from the .mat

Prints the metric table, writes OUT/results.json (silog, abs_rel, log10, rmse, sq_rel,
rmse_log, d1, d2, d3, count) and OUT/per_image.csv, both or neither (a failed run
leaves no partial results). --compare prints the paper's Table 1 beside the result.

Focal scaling (--focal-scaling auto, the default for NYU-style lists): a checkpoint that records its training
camera has each prediction multiplied by the list's focal length over the training one
(NYU's 518.8579 px where the list gives none, and for --nyu-mat), so a list from another
camera is scored at its own scale; a list of the training camera is scored unchanged
(docs/camera-scale.md). For --dataset kitti the default is off: PixelFormer scores the
Eigen split's drives (707-721 px) unscaled.
"""
import csv
import io
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset
from tqdm import tqdm

from textdepth_ros.atomic_io import atomic_files
from textdepth_ros.camera_scale import FocalScaling
from textdepth_ros.data.dataset import ListDataset, Loader, MatDataset
from textdepth_ros.data.nyu import load_depth, read_list
from textdepth_ros.data.scene_text import SceneText
from textdepth_ros.errors import UserError
from textdepth_ros.data.kitti import KB_CROP, KITTI_MAX_DEPTH, KITTI_TEXT, kb_crop, kb_crop_box
from textdepth_ros.metrics import MAX_DEPTH_EVAL, METRIC_NAMES, MetricAverager, evaluate_depth, format_table, protocol_crop

# Paper Table 1 (NYU Depth v2): abs_rel, rmse, log10, d1, d2, d3 (None = not reported).
TABLE1 = [
    ("Eigen et al.", 0.158, 0.641, None, 0.769, 0.950, 0.988),
    ("DAV", 0.108, 0.412, None, 0.882, 0.980, 0.996),
    ("TransDepth", 0.106, 0.365, 0.045, 0.900, 0.983, 0.996),
    ("DPT", 0.110, 0.367, 0.045, 0.904, 0.988, 0.998),
    ("PackNet-SAN", 0.106, 0.393, None, 0.892, 0.979, 0.995),
    ("AdaBins", 0.103, 0.364, 0.044, 0.903, 0.984, 0.997),
    ("Naderi et al.", 0.097, 0.444, 0.042, 0.897, 0.982, 0.996),
    ("Lee et al.", 0.107, 0.373, 0.046, 0.893, 0.985, 0.997),
    ("P3Depth", 0.104, 0.356, 0.043, 0.898, 0.981, 0.996),
    ("NeWCRFs", 0.095, 0.334, 0.041, 0.922, 0.992, 0.998),
    ("PixelFormer", 0.090, 0.322, 0.039, 0.929, 0.991, 0.998),
    ("Paper (CLIP prior)", 0.088, 0.319, 0.039, 0.931, 0.992, 0.998),
]
TABLE1_COLUMNS = ("abs_rel", "rmse", "log10", "d1", "d2", "d3")
AMP = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def add_arguments(parser) -> None:
    src = parser.add_argument_group("what to evaluate (one of)")
    src.add_argument("--checkpoint", help="textdepth_ros checkpoint (.safetensors) to run")
    src.add_argument("--config", help="evaluate an untrained model of this config (tiny, paper or a .yaml): a baseline")
    src.add_argument("--pred-dir", help="folder of another method's predictions: float32 metres .npy at "
                                        "PRED_DIR/<rgb path of the list with .npy>")
    data = parser.add_argument_group("data (one of)")
    data.add_argument("--data-root", help="dataset root the list's paths are relative to")
    data.add_argument("--test-list", help="list file: 'rgb depth focal' per line (Eigen: 654 lines)")
    data.add_argument("--nyu-mat", help="nyu_depth_v2_labeled.mat: evaluate its official 654 test images")
    data.add_argument("--mat-depth-key", default="rawDepths", choices=["rawDepths", "depths"],
                      help="which depth of the .mat is ground truth (default rawDepths = what the Eigen list's PNGs hold)")
    data.add_argument("--dataset", default="nyu", choices=["nyu", "sunrgbd", "kitti"],
                      help="nyu = uint16 mm PNGs; sunrgbd = SUN RGB-D's bit-rotated uint16; kitti = BTS's Eigen list, "
                           "uint16 PNG / 256 under --gt-root, KB crop (default nyu)")
    data.add_argument("--gt-root", help="root of the list's depth paths when they live in another tree (KITTI: "
                                        "kitti_gt, joined with each image's date folder as PixelFormer does; "
                                        "default --data-root)")
    proto = parser.add_argument_group("protocol")
    proto.add_argument("--crop", choices=["eigen", "garg", "none"],
                       help="eigen = NYU's rows 45:471, cols 41:601 of 480x640, or KITTI's Eigen crop with --dataset "
                            "kitti; garg = Garg's KITTI crop (default: eigen for nyu, garg for kitti, none for sunrgbd)")
    proto.add_argument("--no-flip", action="store_true", help="disable flip test-time augmentation (on by default, as PixelFormer)")
    proto.add_argument("--min-depth", type=float, default=1e-3, help="min_depth_eval in metres (default 1e-3)")
    proto.add_argument("--max-depth", type=float, help="max_depth_eval in metres (default 10; 80 for kitti)")
    proto.add_argument("--focal-scaling", choices=["auto", "off"],
                       help="auto: depth x (the list's focal length / the checkpoint's training focal length) when the "
                            "checkpoint records its camera; off: never (default auto; off for kitti, as PixelFormer "
                            "scores KITTI's drives, whose focal lengths differ by 2 %%, unscaled)")
    proto.add_argument("--limit", type=int, help="evaluate only the first N images (a quick check; not the protocol)")
    text = parser.add_argument_group("scene text")
    text.add_argument("--text-template", default="a photo of a {scene}", help="prompt built from the scene folder name")
    text.add_argument("--captions-dir", help="folder with one .txt per image (same relative path as the rgb file)")
    text.add_argument("--text", help="one fixed description for every image (default for --dataset kitti without "
                                     f"--captions-dir: {KITTI_TEXT!r}, as config/train_kitti.yaml); captions win where "
                                     "they exist")
    run_opts = parser.add_argument_group("running")
    run_opts.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    run_opts.add_argument("--amp", default="none", choices=list(AMP), help="autocast precision on top of fp32 weights (default none)")
    run_opts.add_argument("--batch-size", type=int, default=1, help="images per forward pass (default 1)")
    run_opts.add_argument("--num-workers", type=int, default=2, help="data loader worker processes (default 2)")
    parser.add_argument("--out", default="eval_results", help="folder for results.json and per_image.csv (default eval_results)")
    parser.add_argument("--compare", action="store_true", help="print the paper's Table 1 rows beside this result")


def _dataset(args, scene_text):
    if args.nyu_mat:
        if args.test_list or args.data_root:
            raise UserError("give either --nyu-mat or --data-root/--test-list, not both")
        return MatDataset(args.nyu_mat, scene_text, args.mat_depth_key)
    if not (args.data_root and args.test_list):
        raise UserError("need --data-root and --test-list (or --nyu-mat)")
    if not Path(args.data_root).is_dir():
        raise UserError(f"data root not found: {args.data_root}")
    loader, read = load_depth, read_list
    if args.dataset == "sunrgbd":
        from textdepth_ros.data.sunrgbd import load_sunrgbd_depth as loader
    if args.dataset == "kitti":
        from textdepth_ros.data.kitti import load_kitti_depth as loader, read_kitti_list as read
    elif args.gt_root:
        raise UserError("--gt-root is for --dataset kitti (NYU and SUN RGB-D lists hold image and depth in one tree)")
    if args.gt_root and not Path(args.gt_root).is_dir():
        raise UserError(f"ground-truth root not found: {args.gt_root}")
    samples = [s for s in read(args.test_list) if s.depth is not None]
    if not samples:
        raise UserError(f"{args.test_list} has no entry with ground truth depth")
    return ListDataset(args.data_root, samples, scene_text, augment_cfg=None, depth_loader=loader, list_name="test list",
                       depth_root=args.gt_root, kb_crop=args.dataset == "kitti")


def load_prediction(path) -> np.ndarray:
    """A prediction .npy as float32 HxW metres. Never unpickles (a pickled .npy can run
    code): anything but a plain numeric array is one UserError."""
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise UserError(f"{path} is not a .npy file (save predictions with numpy.save)")
    try:
        pred = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise UserError(f"{path} holds pickled Python objects, not a numeric array; refused, "
                            "pickles can run code") from None
        raise UserError(f"{path} is not a readable .npy array ({str(exc).splitlines()[0]})") from None
    except (OSError, EOFError) as exc:
        raise UserError(f"{path} is not a readable .npy array ({type(exc).__name__}: {exc})") from None
    if pred.dtype.kind not in "fiu":
        raise UserError(f"{path} holds {pred.dtype} values, not depth in metres")
    pred = pred.squeeze()
    if pred.ndim != 2:
        raise UserError(f"{path} has shape {pred.shape}; expected one HxW depth map")
    return pred.astype(np.float32)


def _eval_predictions(args, dataset, crop, per_image) -> dict:
    averager = MetricAverager()
    pred_dir = Path(args.pred_dir)
    if not pred_dir.is_dir():
        raise UserError(f"prediction folder not found: {pred_dir}")
    with tqdm(total=len(dataset), desc="eval", unit="img", leave=False) as bar:
        for index in range(len(dataset)):
            item = dataset[index]
            path = (pred_dir / item["name"]).with_suffix(".npy")
            if not path.is_file():
                raise UserError(f"missing prediction {path} (expected PRED_DIR/<rgb path>.npy)")
            pred = load_prediction(path)
            gt = item["depth"][0].numpy()
            if args.dataset == "kitti" and pred.shape != KB_CROP and pred.shape[0] >= KB_CROP[0] \
                    and pred.shape[1] >= KB_CROP[1]:
                pred = kb_crop(pred, kb_crop_box(*pred.shape, name=str(path)))  # a full-frame prediction
            if pred.shape != gt.shape:
                raise UserError(f"{path}: prediction is {'x'.join(map(str, pred.shape))}, its ground truth "
                                f"{item['name']} is {'x'.join(map(str, gt.shape))} (predictions must be at the GT's size)")
            metrics = evaluate_depth(pred, gt, crop=crop, min_depth=args.min_depth, max_depth=args.max_depth)
            averager.add(metrics)
            if metrics is not None:
                per_image.append((item["name"], metrics))
            bar.update(1)
    return averager.mean()


def _eval_model(args, dataset, crop, per_image) -> dict:
    from textdepth_ros.devices import resolve_device
    from textdepth_ros.model import build_model
    from textdepth_ros.model.checkpoint import load_checkpoint
    from textdepth_ros.training.evaluate import evaluate_model

    device, warning = resolve_device(args.device)
    if warning:
        print(f"warning: {warning}")
    extra = {}
    if args.checkpoint:
        model, extra = load_checkpoint(args.checkpoint, device=device)
        print(f"checkpoint {args.checkpoint}: {model.config.get('name', '?')} ({model.variant}), "
              f"step {extra.get('step', '?')}")
    else:
        model = build_model(args.config).to(device)
        print(f"warning: evaluating an UNTRAINED {model.config.get('name', '?')} model (no --checkpoint)")
    factors = ListFocalFactors(FocalScaling(args.focal_scaling, extra.get("camera")))
    if args.amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs CUDA (use bf16 on CPU)")
    loader = Loader(dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.num_workers,
                    pin_memory=device.type == "cuda")
    metrics = evaluate_model(model, loader, device, flip_tta=not args.no_flip, amp_dtype=AMP[args.amp], crop=crop,
                             min_depth=args.min_depth, max_depth=args.max_depth, per_image=per_image,
                             focal_factors=factors)
    factors.summarize()
    return metrics


class ListFocalFactors:
    """Each image's focal-scaling factor from its list focal length (fx = fy); prints the
    first factor's line, and at the end how many distinct factors a mixed list gave."""

    def __init__(self, scaling):
        self.scaling, self.seen = scaling, {}

    def __call__(self, batch) -> list:
        out = []
        height, width = batch["image"].shape[-2:]
        for focal in batch["focal"]:
            factor, line = self.scaling.factor(focal, focal, int(width), int(height))
            if line and not self.seen:
                tqdm.write(line)
            self.seen[factor] = self.seen.get(factor, 0) + 1
            out.append(factor)
        return out

    def summarize(self) -> None:
        if len(self.seen) > 1:
            print(f"focal scaling: {len(self.seen)} different factors over {sum(self.seen.values())} images "
                  f"(x{min(self.seen):.4f}..x{max(self.seen):.4f}: the list mixes focal lengths)")


def write_results(out: Path, metrics: dict, per_image) -> None:
    """results.json and per_image.csv, each written to a temporary file and renamed, the
    CSV first: results.json appears last, only when everything before it succeeded."""
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["name", *METRIC_NAMES])
    for name, m in per_image:
        writer.writerow([name, *(f"{m[k]:.6f}" for k in METRIC_NAMES)])
    summary = json.dumps({k: metrics[k] for k in (*METRIC_NAMES, "count")}, indent=2) + "\n"
    with atomic_files(out / "per_image.csv", out / "results.json", what="results") as (csv_tmp, json_tmp):
        csv_tmp.write_text(table.getvalue())
        json_tmp.write_text(summary)


def compare_table(metrics: dict) -> str:
    def cell(v):
        return f"{v:>9.3f}" if v is not None else f"{'-':>9}"

    lines = [f"{'method':<22}" + "".join(f"{c:>9}" for c in TABLE1_COLUMNS)]
    for name, *values in TABLE1:
        lines.append(f"{name:<22}" + "".join(cell(v) for v in values))
    lines.append(f"{'this run':<22}" + "".join(cell(metrics[c]) for c in TABLE1_COLUMNS))
    return "\n".join(lines)


def run(args) -> int:
    sources = [bool(args.checkpoint), bool(args.config), bool(args.pred_dir)]
    if sum(sources) != 1:
        raise UserError("give exactly one of --checkpoint, --config or --pred-dir")
    if args.batch_size < 1 or args.num_workers < 0:
        raise UserError("--batch-size must be >= 1 and --num-workers >= 0")
    if args.dataset == "kitti" and args.text is None and not args.captions_dir:
        args.text = KITTI_TEXT  # as config/train_kitti.yaml trains: KITTI's lists name no scene
    scene_text = SceneText(args.text_template, args.captions_dir, args.text)
    dataset = _dataset(args, scene_text)
    if args.limit:
        dataset_for_texts = dataset
        dataset = Subset(dataset, range(min(args.limit, len(dataset))))
        dataset.text = dataset_for_texts.text
    crop = protocol_crop(args.dataset, args.crop or {"nyu": "eigen", "kitti": "garg"}.get(args.dataset, "none"))
    if args.max_depth is None:
        args.max_depth = KITTI_MAX_DEPTH if args.dataset == "kitti" else MAX_DEPTH_EVAL
    if args.focal_scaling is None:
        args.focal_scaling = "off" if args.dataset == "kitti" else "auto"
    print(f"{len(dataset)} images, crop {crop or 'none'}, flip TTA {'off' if args.no_flip else 'on'}, "
          f"depth ({args.min_depth}, {args.max_depth}) m, example text: {dataset.text(0)!r}")
    per_image = []
    if args.pred_dir:
        metrics = _eval_predictions(args, dataset, crop, per_image)
    else:
        metrics = _eval_model(args, dataset, crop, per_image)
    if metrics["count"] == 0:
        raise UserError("no image had a valid ground-truth pixel")
    out = Path(args.out)
    write_results(out, metrics, per_image)
    print(format_table(metrics))
    print(f"{metrics['count']} images; wrote {out / 'results.json'} and {out / 'per_image.csv'}")
    if args.compare:
        print("\nPaper Table 1 (NYU Depth v2) beside this run:")
        print(compare_table(metrics))
    return 0
