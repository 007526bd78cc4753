"""The demo's scene: one fixed room of data/synthetic_scene.py (the renderer
`make-dataset` uses) seen by a pinhole camera that slides 0.6 m sideways."""
from dataclasses import dataclass

import numpy as np

from textdepth_ros.data.synthetic_scene import Room, render

ROOM = Room(back=6.0, half_width=2.0, floor=1.2, height=2.6,
            palette=((0.59, 0.43, 0.31), (0.92, 0.92, 0.92), (0.75, 0.78, 0.84)),
            boxes=[(np.array([-1.6, 0.4, 3.0]), np.array([-0.8, 1.2, 3.8])),
                   (np.array([0.3, 0.6, 2.2]), np.array([0.9, 1.2, 2.8])),
                   (np.array([1.0, -0.2, 4.5]), np.array([1.9, 1.2, 5.5]))],
            box_colours=[(0.78, 0.24, 0.2), (0.24, 0.47, 0.78), (0.9, 0.75, 0.24)])


@dataclass
class Frame:
    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32, metres along the optical axis
    K: tuple  # fx, fy, cx, cy


def intrinsics(height: int, width: int) -> tuple:
    f = 0.8 * width  # ~64 degree horizontal field of view
    return f, f, (width - 1) / 2.0, (height - 1) / 2.0


def sequence(count: int, height: int = 240, width: int = 320):
    """`count` frames, the camera sliding from x = -0.3 m to +0.3 m."""
    K = intrinsics(height, width)
    for i in range(count):
        eye = (-0.3 + 0.6 * i / max(count - 1, 1), 0.0, 0.0)
        rgb, depth = render(ROOM, K, height, width, eye=eye, rng=np.random.default_rng(i))
        yield Frame(rgb, depth, K)
