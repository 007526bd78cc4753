"""Train the model `textdepth demo` runs, and write it to model/demo/ (`make demo-model`).

The micro model config (config/model/micro.yaml), variant full (TRCA + TBCP), trained on
CPU on generated rooms of the scale-in-words world (make-dataset --world scale: the
description says the room's size, the picture cannot) at the demo's image size, with
the text-prior experiment's recipe. Then it is measured on held-out generated rooms
(right, shuffled and constant texts) and on the demo's own sequence (demo/room.py, a room
it never saw), and written with float16 weights (half the size; the numbers are measured
with those weights), the measurements in the checkpoint's metadata. Its rooms are seen
by one camera; it knows nothing else: not for real cameras.

A fixed seed gives the same model on the same machine and torch build; elsewhere floating
point may differ slightly, and the numbers it prints say how it came out.
"""
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from textdepth_ros.atomic_io import atomic_files
from textdepth_ros.camera_scale import Camera
from textdepth_ros.data.dataset import ListDataset
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.data.nyu import nyu_camera, read_list
from textdepth_ros.data.scene_text import SceneText
from textdepth_ros.demo.demo import DEMO_CHECKPOINT, DEMO_SIZE
from textdepth_ros.demo.room import sequence
from textdepth_ros.devices import torch_threads
from textdepth_ros.model.checkpoint import set_checkpoint_camera
from textdepth_ros.experiments.text_controls import evaluate_with_controls, load_test_set, predictions, score
from textdepth_ros.experiments.text_prior import RECIPE
from textdepth_ros.paths import config_dir, weights_dir
from textdepth_ros.train import train
from textdepth_ros.training.config import load_train_config


def add_arguments(parser) -> None:
    parser.add_argument("--out", default=str(weights_dir() / DEMO_CHECKPOINT),
                        help=f"checkpoint to write (default model/{DEMO_CHECKPOINT}, where `textdepth demo` looks)")
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps of batch 4 (default 3000: 25 epochs)")
    parser.add_argument("--n-train", type=int, default=480, help="training images (default 480, 120 rooms)")
    parser.add_argument("--n-test", type=int, default=60, help="held-out images, other rooms (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="rooms and initialisation (default 0)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, poly decay to 0.1x (default 1e-3)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")


@torch.no_grad()
def sequence_accuracy(model, frames) -> dict:
    """The model's depth on the demo frames (each with its own description), scored
    against their exact ground truth, and the median depth of each half."""
    test = {"image": torch.stack([torch.from_numpy(f.rgb.transpose(2, 0, 1).astype(np.float32) / 255) for f in frames]),
            "depth": np.stack([f.depth for f in frames]), "text": [f.text for f in frames]}
    preds = predictions(model, test, test["text"])
    halves = {}
    for f, p in zip(frames, preds):
        halves.setdefault(f.text, []).append(float(np.median(p)))
    return dict(score(preds, test["depth"]), median_depth_m={t: round(float(np.median(v)), 3) for t, v in halves.items()})


def half_precision_copy(source: Path, target: Path, measured: dict) -> int:
    """`source` with float16 tensors and `measured` added to its 'extra' metadata, every
    other metadata field as it was (the model config, the training camera). Returns bytes."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), framework="pt", device="cpu") as f:
        metadata = dict(f.metadata())
        tensors = {k: (t.half() if t.is_floating_point() else t) for k in f.keys() for t in [f.get_tensor(k)]}
    extra = json.loads(metadata.get("extra", "{}"))
    extra.pop("train_config", None)  # its paths were a temporary folder's
    extra["demo_model"] = measured
    metadata["extra"] = json.dumps(extra)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_files(target, what="checkpoint") as (tmp,):
        save_file(tensors, str(tmp), metadata=metadata)
    return target.stat().st_size


def run(args) -> int:
    with torch_threads(args.threads):
        return make_demo_model(args)


def make_demo_model(args) -> int:
    height, width = DEMO_SIZE
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="textdepth-demo-model-") as tmp:
        print(f"generating {args.n_train} + {args.n_test} rooms of the scale-in-words world at {height}x{width} ...")
        paths = generate_dataset(Path(tmp) / "data", args.n_train, args.n_test, height, width, seed=args.seed,
                                 progress=True, world="scale")
        cfg = load_train_config(config_dir() / "train_tiny.yaml", RECIPE + [
            "model=micro", "variant=full", f"data.root={paths['root']}", f"data.train_list={paths['train_list']}",
            "data.test_list=", f"data.captions_dir={paths['captions_dir']}", f"log.out_dir={Path(tmp) / 'run'}",
            f"train.seed={args.seed}", f"train.lr={args.lr}", "train.batch_size=4",
            f"train.epochs={-(-args.steps * 4 // args.n_train)}", f"train.max_steps={args.steps}"])
        summary = train(cfg)
        model = summary["model"].eval()
        # Measure what will be shipped: the float16 weights.
        model.load_state_dict({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()})
        test = load_test_set(ListDataset(paths["root"], read_list(paths["test_list"]),
                                         SceneText(captions_dir=paths["captions_dir"]), list_name="test list"))
        held_out, _ = evaluate_with_controls(model, test, "scale", args.seed)
        demo = sequence_accuracy(model, list(sequence(10, height, width)))
        measured = {"held_out": held_out, "demo_sequence": demo, "steps": summary["step"],
                    "train_seconds": round(summary["seconds"]), "image_size": [height, width],
                    "command": f"textdepth demo-model --steps {args.steps} --n-train {args.n_train} "
                               f"--n-test {args.n_test} --seed {args.seed} --lr {args.lr:g}",
                    "date": time.strftime("%Y-%m-%d")}
        size = half_precision_copy(Path(tmp) / "run" / "last.safetensors", Path(args.out), measured)
        # The exact camera of its images (the list's focal column has fx alone, to 4 decimals):
        # the demo's camera then gets a focal-scaling factor of exactly 1.
        set_checkpoint_camera(args.out, Camera(*nyu_camera(height, width)[:2], width, height))
    right = held_out["right"]
    print(f"held-out rooms: AbsRel {right['abs_rel']:.3f} (texts shuffled {held_out['shuffled']['abs_rel']:.3f}, "
          f"one constant text {held_out['constant']['abs_rel']:.3f}), RMSE {right['rmse']:.3f} m, delta1 {right['d1']:.3f}")
    medians = ", ".join(f"\"{t}\": {m:.2f} m" for t, m in demo["median_depth_m"].items())
    print(f"demo sequence: AbsRel {demo['abs_rel']:.3f}, median depth {medians}")
    print(f"wrote {args.out} ({size / 1e6:.1f} MB) in {(time.monotonic() - started) / 60:.1f} min")
    return 0
