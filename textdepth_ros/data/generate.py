"""Write a small synthetic dataset in the NYU Depth v2 (BTS/PixelFormer) layout.

Scene folders (`bedroom_0001/rgb_00012.jpg`, `.../sync_depth_00012.png` in uint16
millimetres) plus a train list in the BTS train style (leading '/') and a test list in
the Eigen test style. Each image is a random room of synthetic_scene.py (the renderer the
demo uses too) seen by a NYU-like camera, depth 0.5-10 m, with room sizes that depend on
the scene type (so the scene text is informative, as in the paper). A few small holes
have depth 0, like Kinect dropouts.

`--world scale` writes the other condition (data/scale_world.py): rooms scaled as a whole
by a factor the picture does not show, a description per image that says the size
(captions/<scene>/rgb_NNNNN.txt, read with data.captions_dir), and scene folders named
room_NNNN so the folder name says nothing.
"""
import argparse
import math
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from textdepth_ros.data import scale_world
from textdepth_ros.data.nyu import nyu_camera, save_depth_png
from textdepth_ros.data.synthetic_scene import Room, furnish, render
from textdepth_ros.errors import UserError

# scene type -> (back-wall distance range m, room half-width range m, floor/ceiling/wall RGB 0..1)
SCENES = {
    "bathroom": ((2.2, 3.5), (1.0, 1.6), [(0.85, 0.88, 0.9), (0.55, 0.7, 0.8), (0.95, 0.95, 0.95)]),
    "bedroom": ((3.2, 5.5), (1.6, 2.4), [(0.75, 0.62, 0.5), (0.55, 0.45, 0.6), (0.9, 0.85, 0.75)]),
    "kitchen": ((3.0, 5.5), (1.4, 2.2), [(0.8, 0.8, 0.7), (0.6, 0.35, 0.25), (0.9, 0.9, 0.85)]),
    "office": ((4.0, 7.5), (2.0, 3.0), [(0.6, 0.6, 0.62), (0.35, 0.45, 0.6), (0.85, 0.85, 0.88)]),
    "living_room": ((4.5, 8.0), (2.2, 3.2), [(0.6, 0.45, 0.3), (0.7, 0.6, 0.4), (0.85, 0.8, 0.7)]),
    "classroom": ((6.0, 9.0), (2.8, 3.8), [(0.5, 0.55, 0.45), (0.75, 0.7, 0.55), (0.9, 0.9, 0.9)]),
}
MIN_DEPTH, MAX_DEPTH = 0.5, 9.99
WORLDS = ("scene", "scale")


def view_rotation(yaw: float, pitch: float) -> np.ndarray:
    """Camera rays -> room frame: turned by `yaw` (rad, + = right) and `pitch` (+ = up)."""
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return r_yaw @ r_pitch


def render_room(rng: np.random.Generator, room: Room, height: int, width: int, scale: float = 1.0):
    """(rgb uint8 HxWx3, depth float32 HxW metres) of one randomly placed view of `room`,
    seen by NYU's Kinect scaled to height x width; depth clipped to the dataset's range,
    with a few Kinect-like dropouts (depth 0). `scale`: the factor the room was scaled by
    (scale_world.scaled); the camera's offset scales with it, so the picture does not."""
    intrinsics = nyu_camera(height, width)
    rotation = view_rotation(rng.uniform(-0.35, 0.35), rng.uniform(-0.12, 0.08))
    eye = (rng.uniform(-0.3, 0.3) * scale, 0.0, rng.uniform(-0.3, 0.3) * scale)
    rgb, depth = render(room, intrinsics, height, width, eye, rotation, rng)
    depth = np.clip(depth, MIN_DEPTH, MAX_DEPTH)
    for _ in range(rng.integers(0, 4)):  # sensor dropouts
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(2, max(3, width // 25))), int(rng.integers(2, max(3, height // 25))))
        cv2.ellipse(depth, centre, axes, 0, 0, 360, 0.0, -1)
    return rgb, depth


def make_room(rng: np.random.Generator, scene_type: str) -> Room:
    (d_lo, d_hi), (w_lo, w_hi), palette = SCENES[scene_type]
    room = Room(back=rng.uniform(d_lo, d_hi), half_width=rng.uniform(w_lo, w_hi), floor=rng.uniform(1.1, 1.5),
                height=rng.uniform(2.5, 3.0), palette=palette)
    return furnish(room, rng, largest=[1.2, 1.4, 1.0], nearest=1.0)


def _next_room(rng, world: str, room_number: int):
    """(scene folder, room, scale, size index or None) of the room_number-th room."""
    if world == "scene":
        scene_type = list(SCENES)[room_number % len(SCENES)]
        return f"{scene_type}_{room_number:04d}", make_room(rng, scene_type), 1.0, None
    size = room_number % len(scale_world.SIZES)  # sizes in turn: every split holds all of them
    palette = list(SCENES.values())[int(rng.integers(len(SCENES)))][2]
    s = scale_world.SIZES[size][0]
    return f"room_{room_number:04d}", scale_world.scaled(scale_world.unscaled_room(rng, palette), s), s, size


def generate_dataset(out_dir, n_train: int = 48, n_test: int = 16, height: int = 480, width: int = 640,
                     seed: int = 0, views_per_room: int = 4, progress: bool = False, world: str = "scene") -> dict:
    """Write the dataset; returns dict(root, train_list, test_list, captions_dir) (paths as
    str; captions_dir None in the scene world, whose texts come from the folder names)."""
    if world not in WORLDS:
        raise UserError(f"unknown world {world!r} (one of {', '.join(WORLDS)})")
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise UserError("need at least one image (n_train + n_test > 0)")
    if height < 32 or width < 32:
        raise UserError(f"image size {height}x{width} is too small (at least 32x32)")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    focal = nyu_camera(height, width)[0]
    captions = root / "captions" if world == "scale" else None
    lines = {"train": [], "test": []}
    index, room_number = 0, 0
    jobs = [("train", n_train), ("test", n_test)]
    bar = tqdm(total=n_train + n_test, desc="make-dataset", unit="img", disable=not progress)
    for split, count in jobs:
        made = 0
        while made < count:
            room_number += 1
            folder, room, scale, size = _next_room(rng, world, room_number)
            (root / folder).mkdir(exist_ok=True)
            for _ in range(min(views_per_room, count - made)):
                rgb, depth = render_room(rng, room, height, width, scale)
                rgb_rel, depth_rel = f"{folder}/rgb_{index:05d}.jpg", f"{folder}/sync_depth_{index:05d}.png"
                if captions is not None:  # one phrasing per image, drawn
                    text = scale_world.describe(size, int(rng.integers(len(scale_world.TEMPLATES))))
                    (captions / folder).mkdir(parents=True, exist_ok=True)
                    (captions / folder / f"rgb_{index:05d}.txt").write_text(text + "\n")
                cv2.imwrite(str(root / rgb_rel), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
                save_depth_png(root / depth_rel, depth)
                # Train list in the BTS train style (leading '/'), test list in the Eigen style.
                prefix = "/" if split == "train" else ""
                lines[split].append(f"{prefix}{rgb_rel} {prefix}{depth_rel} {focal:.4f}")
                index, made = index + 1, made + 1
                bar.update(1)
    bar.close()
    paths = {"root": str(root), "train_list": str(root / "train_list.txt"), "test_list": str(root / "test_list.txt"),
             "captions_dir": str(captions) if captions is not None else None}
    for split in ("train", "test"):
        Path(paths[f"{split}_list"]).write_text("\n".join(lines[split]) + ("\n" if lines[split] else ""))
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (created; existing files are overwritten)")
    parser.add_argument("--n-train", type=int, default=48, help="number of training images (default 48)")
    parser.add_argument("--n-test", type=int, default=16, help="number of test images (default 16)")
    parser.add_argument("--height", type=int, default=480, help="image height in pixels (default 480, as NYU)")
    parser.add_argument("--width", type=int, default=640, help="image width in pixels (default 640, as NYU)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same dataset")
    parser.add_argument("--world", choices=WORLDS, default="scene",
                        help="scene (default): room sizes depend on the scene type, which the folder name (and so the "
                             "text) says; scale: every room scaled by a factor the picture does not show and the "
                             "per-image description does (captions/, see docs/text-prior-experiment.md)")


def run(args) -> int:
    paths = generate_dataset(args.out, args.n_train, args.n_test, args.height, args.width, args.seed, progress=True,
                             world=args.world)
    print(f"data root:  {paths['root']}\ntrain list: {paths['train_list']}\ntest list:  {paths['test_list']}")
    if paths["captions_dir"]:
        print(f"captions:   {paths['captions_dir']}  (train with --set data.captions_dir={paths['captions_dir']})")
    return 0
