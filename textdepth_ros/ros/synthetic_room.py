"""A small room rendered with numpy ray casting: floor, ceiling, three walls and boxes,
seen by a pinhole camera that slides sideways. Gives the demo RGB frames with exact
ground-truth depth, no files and no camera needed.

Camera optical frame: x right, y down, z forward (REP 103 optical convention).
"""
from dataclasses import dataclass

import numpy as np

ROOM = {"left": -2.0, "right": 2.0, "floor": 1.2, "ceiling": -1.4, "back": 6.0}
# (min corner, max corner, RGB) in the optical frame at the first camera position
BOXES = [
    ((-1.6, 0.4, 3.0), (-0.8, 1.2, 3.8), (200, 60, 50)),
    ((0.3, 0.6, 2.2), (0.9, 1.2, 2.8), (60, 120, 200)),
    ((1.0, -0.2, 4.5), (1.9, 1.2, 5.5), (230, 190, 60)),
]
WALL_COLOURS = {"left": (170, 200, 170), "right": (200, 170, 170), "back": (190, 190, 215),
                "ceiling": (235, 235, 235)}


@dataclass
class Frame:
    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32, metres along the optical axis
    K: tuple  # fx, fy, cx, cy


def intrinsics(height: int, width: int) -> tuple:
    f = 0.8 * width  # ~64 degree horizontal field of view
    return f, f, (width - 1) / 2.0, (height - 1) / 2.0


def render(height: int, width: int, camera_x: float = 0.0) -> Frame:
    fx, fy, cx, cy = intrinsics(height, width)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    dx, dy = (u - cx) / fx, (v - cy) / fy  # ray direction per unit of z
    origin_x = camera_x
    z = np.full((height, width), np.inf)
    colour = np.zeros((height, width, 3))

    def hit(t, mask, rgb):
        nonlocal z
        closer = mask & (t > 0) & (t < z)
        z = np.where(closer, t, z)
        colour[closer] = rgb[closer] if isinstance(rgb, np.ndarray) else rgb

    with np.errstate(divide="ignore", invalid="ignore"):
        # Floor (y = floor) with a checker pattern, ceiling (y = ceiling).
        t = ROOM["floor"] / dy
        fx_, fz_ = origin_x + dx * t, t
        checker = ((np.floor(fx_ * 2) + np.floor(fz_ * 2)) % 2)[..., None]
        floor_rgb = np.where(checker > 0, [150, 110, 80], [110, 80, 60]).astype(float)
        hit(t, dy > 0, floor_rgb)
        hit(ROOM["ceiling"] / dy, dy < 0, WALL_COLOURS["ceiling"])
        # Side walls (x = const) and the back wall (z = const).
        hit((ROOM["left"] - origin_x) / dx, dx < 0, WALL_COLOURS["left"])
        hit((ROOM["right"] - origin_x) / dx, dx > 0, WALL_COLOURS["right"])
        hit(np.full_like(z, ROOM["back"]), np.ones_like(z, bool), WALL_COLOURS["back"])
        for lo, hi, rgb in BOXES:  # slab test per pixel
            t_near, t_far = np.zeros_like(z), np.full_like(z, np.inf)
            for axis_dir, o, a, b in ((dx, origin_x, lo[0], hi[0]), (dy, 0.0, lo[1], hi[1]),
                                      (np.ones_like(z), 0.0, lo[2], hi[2])):
                t1, t2 = (a - o) / axis_dir, (b - o) / axis_dir
                t_near = np.maximum(t_near, np.minimum(t1, t2))
                t_far = np.minimum(t_far, np.maximum(t1, t2))
            hit(t_near, t_far >= t_near, rgb)
    # Distance fog and a little noise so the image is not flat colour.
    shade = np.clip(1.15 - z / 12.0, 0.4, 1.0)[..., None]
    noise = np.random.default_rng(int(camera_x * 1000) % 2**31).normal(0, 3, colour.shape)
    rgb = np.clip(colour * shade + noise, 0, 255).astype(np.uint8)
    return Frame(rgb, z.astype(np.float32), (fx, fy, cx, cy))


def sequence(count: int, height: int = 240, width: int = 320):
    """`count` frames, the camera sliding 0.6 m to the right."""
    for i in range(count):
        yield render(height, width, camera_x=-0.3 + 0.6 * i / max(count - 1, 1))
