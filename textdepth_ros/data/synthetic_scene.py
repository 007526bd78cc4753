"""One synthetic-room renderer, shared by `textdepth make-dataset` and `textdepth demo`.

A room (floor, ceiling, side walls, back wall and axis-aligned boxes) is ray cast with
numpy for a pinhole camera. Appearance carries depth cues a network can learn:
world-space textures (tiles and stripes shrink with distance) and light falling off
with distance. Depth is exact: metres along the optical axis (REP 118).

Scale: a room whose every length (walls, boxes, the camera position), texture period
(`pattern_scale`) and light fall-off distance (`light_distance`) is multiplied by s gives
the same picture and s times the depth (exactly so for s a power of two): monocular
depth is ambiguous in scale, and data/scale_world.py builds a dataset on that.

Camera optical frame: x right, y down, z forward (REP 103). Pixel (u, v) looks along
((u - cx) / fx, (v - cy) / fy, 1), the convention the point cloud uses to back-project.
"""
from dataclasses import dataclass, field

import numpy as np

FLOOR, CEILING, WALL = 0, 1, 2  # materials; boxes are 3, 4, ...


@dataclass
class Room:
    """A room in the world frame of its first camera (y down, z forward)."""

    back: float  # z of the back wall (m)
    half_width: float  # side walls at x = -half_width and +half_width
    floor: float  # y of the floor (camera height above it)
    height: float  # floor to ceiling
    palette: tuple  # RGB 0..1 of floor, ceiling, walls
    boxes: list = field(default_factory=list)  # (min corner, max corner) arrays
    box_colours: list = field(default_factory=list)  # RGB 0..1 each
    pattern_scale: float = 1.0  # texture periods: floor tiles 0.5 m and wall stripes 0.3 m times this
    light_distance: float = 5.0  # the lamp's fall-off length (m)


def furnish(room: Room, rng: np.random.Generator, largest: list, nearest: float) -> Room:
    """Puts 1-4 boxes on the floor, each up to `largest` (width, height, depth; at least
    0.3 m) and no nearer than `nearest` metres, each in a random colour."""
    for _ in range(rng.integers(1, 5)):
        size = rng.uniform([0.3, 0.3, 0.3], largest)
        x0 = rng.uniform(-room.half_width, room.half_width - size[0])
        z0 = rng.uniform(nearest, max(nearest + 0.1, room.back - size[2]))
        lo = np.array([x0, room.floor - size[1], z0])
        room.boxes.append((lo, lo + size))
        room.box_colours.append(tuple(rng.uniform(0.15, 0.95, 3)))
    return room

def cast_rays(room: Room, eye: np.ndarray, rays: np.ndarray):
    """(t, material) of the nearest surface along eye + t * ray, for rays [H, W, 3]."""
    t_best = np.full(rays.shape[:2], np.inf)
    material = np.zeros(rays.shape[:2], np.int32)
    planes = [(1, room.floor, FLOOR), (1, room.floor - room.height, CEILING), (0, -room.half_width, WALL),
              (0, room.half_width, WALL), (2, room.back, WALL), (2, -1.0, WALL)]
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis, offset, mat in planes:
            t = (offset - eye[axis]) / rays[..., axis]
            hit = (t > 0) & (t < t_best)
            t_best[hit], material[hit] = t[hit], mat
        for k, (lo, hi) in enumerate(room.boxes):  # slab test against axis-aligned boxes
            t1, t2 = (np.asarray(lo) - eye) / rays, (np.asarray(hi) - eye) / rays
            t_near = np.minimum(t1, t2).max(-1)
            t_far = np.maximum(t1, t2).min(-1)
            hit = (t_far >= t_near) & (t_near > 0) & (t_near < t_best)
            t_best[hit], material[hit] = t_near[hit], 3 + k
    return t_best, material


def shade(room: Room, points: np.ndarray, material: np.ndarray, depth: np.ndarray, rng) -> np.ndarray:
    """RGB uint8: per-material colour, world-space patterns, light fall-off, sensor noise."""
    rgb = np.zeros(points.shape)
    # World-space patterns: their image-space frequency grows with distance (a depth cue).
    tile, stripe = 0.5 * room.pattern_scale, 0.3 * room.pattern_scale
    tiles = ((np.floor(points[..., 0] / tile) + np.floor(points[..., 2] / tile)) % 2)[..., None]
    stripes = (np.floor((points[..., 0] + points[..., 2]) / stripe) % 2)[..., None]
    for mat in range(3 + len(room.boxes)):
        sel = material == mat
        base = np.array(room.palette[mat] if mat < 3 else room.box_colours[mat - 3])
        pattern = {FLOOR: 0.75 + 0.25 * tiles, WALL: 0.85 + 0.15 * stripes}.get(mat, np.ones_like(tiles))
        rgb[sel] = (base * pattern[sel]).reshape(-1, 3)
    light = (0.3 + 0.7 * np.exp(-depth / room.light_distance))[..., None]  # a lamp near the camera
    rgb = rgb * light + rng.normal(0, 0.015, rgb.shape)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def render(room: Room, intrinsics, height: int, width: int, eye=(0.0, 0.0, 0.0), rotation=None, rng=None):
    """(rgb uint8 HxWx3, depth float32 HxW metres along the optical axis) of one view.
    `intrinsics` = (fx, fy, cx, cy); `rotation` (3x3) turns camera rays into the room frame."""
    fx, fy, cx, cy = intrinsics
    rng = rng if rng is not None else np.random.default_rng(0)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1)  # camera z = 1: t is optical depth
    if rotation is not None:
        rays = rays @ np.asarray(rotation).T
    eye = np.asarray(eye, np.float64)
    depth, material = cast_rays(room, eye, rays)
    rgb = shade(room, eye + rays * depth[..., None], material, depth, rng)
    return rgb, depth.astype(np.float32)
