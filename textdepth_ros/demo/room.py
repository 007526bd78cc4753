"""The demo's scene: one fixed room of the scale-in-words world (data/scale_world.py),
seen by the camera the demo model was trained with (NYU's Kinect scaled to the image
size: a checkpoint's focal-length correction is then a no-op), turned a little to the
right and down as the training views are, sliding sideways.

The first half of the sequence is the room at its medium size (about 4 m deep), the
second half the same room twice as large (camera path included): a picture of it looks
exactly like the smaller room's from the matching place (doubling is exact in the
renderer) and has twice the depth. Only the description tells the halves apart, and it
changes with them, so a model that reads the text rescales its depth and stays right.
The room is not one the demo model was trained on (its rooms are drawn at random).
"""
from dataclasses import dataclass

import numpy as np

from textdepth_ros.data import scale_world
from textdepth_ros.data.generate import view_rotation
from textdepth_ros.data.nyu import nyu_camera
from textdepth_ros.data.synthetic_scene import Room, render

ROOM = Room(back=4.0, half_width=2.2, floor=1.3, height=2.8,
            palette=((0.59, 0.43, 0.31), (0.92, 0.92, 0.92), (0.75, 0.78, 0.84)),
            boxes=[(np.array([-1.6, 0.7, 2.2]), np.array([-0.9, 1.3, 2.9])),
                   (np.array([0.2, 0.9, 1.8]), np.array([0.7, 1.3, 2.3])),
                   (np.array([1.0, 0.3, 3.0]), np.array([1.8, 1.3, 3.7]))],
            box_colours=[(0.78, 0.24, 0.2), (0.24, 0.47, 0.78), (0.9, 0.75, 0.24)])
# (scale of ROOM, its description) of the first and the second half of the sequence
HALVES = ((1.0, scale_world.describe(2, 2)), (2.0, scale_world.describe(4, 2)))
TEXTS = tuple(text for _, text in HALVES)
YAW, PITCH = 0.15, -0.1  # rad; the training views: yaw within +-0.35, pitch within -0.12..0.08


@dataclass
class Frame:
    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32, metres along the optical axis
    K: tuple  # fx, fy, cx, cy
    scale: float  # of ROOM in this frame
    text: str  # the description that belongs to it


def intrinsics(height: int, width: int) -> tuple:
    return nyu_camera(height, width)


def sequence(count: int, height: int = 96, width: int = 128):
    """`count` frames, the camera sliding from x = -0.3 s to +0.3 s; the first count // 2
    in ROOM at HALVES[0]'s scale, the rest at HALVES[1]'s."""
    K = intrinsics(height, width)
    for i in range(count):
        scale, text = HALVES[0] if i < count // 2 else HALVES[1]
        eye = (scale * (-0.3 + 0.6 * i / max(count - 1, 1)), 0.0, 0.0)
        rgb, depth = render(scale_world.scaled(ROOM, scale), K, height, width, eye=eye, rotation=view_rotation(YAW, PITCH),
                            rng=np.random.default_rng(i))
        yield Frame(rgb, depth, K, scale, text)
