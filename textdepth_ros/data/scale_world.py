"""The scale-in-words world (`make-dataset --world scale`): the picture carries no scale,
the description does.

Every room is drawn from one size-free distribution (about 4 m deep, camera 1.1-1.5 m
above the floor) and then scaled as a whole by one of SIZES' factors s: walls, boxes,
camera position, texture periods and light fall-off (synthetic_scene.py). A room
scaled by s renders to the same picture with s times the depth, and the unscaled room
does not depend on s, so no network can read s from the pixels (up to the dataset's
depth clipping at 0.5 and 9.99 m, which the sizes here stay inside of). The scene text
is one of TEMPLATES filled with the size's word and its depth in metres, drawn per
image, so each size has several phrasings and the text is not one fixed string.

This is the condition under which the paper's premise can be shown exactly: words
resolve what pixels cannot. The other condition, make-dataset's default `--world
scene`, lets the scene type hint at the room's size (as NYU's scene names do).
"""
import numpy as np

from textdepth_ros.data.synthetic_scene import Room, furnish

NOMINAL_DEPTH = 4.0  # m: the unscaled room's back wall is 3.6-4.4 m away
# (scale s, size word, the room's depth in words: s x NOMINAL_DEPTH, rounded as people say it)
SIZES = (
    (0.5, "tiny", "2"),
    (0.7, "small", "3"),
    (1.0, "medium-sized", "4"),
    (1.4, "large", "5.5"),
    (2.0, "huge", "8"),
)
TEMPLATES = (
    "a {word} room",
    "a photo of a {word} room",
    "a {word} room, about {metres} metres deep",
    "the back wall is about {metres} metres away",
    "a room about {metres} metres deep",
)


def describe(size_index: int, template_index: int) -> str:
    """The scene text of a room of SIZES[size_index] in TEMPLATES[template_index]'s words."""
    _, word, metres = SIZES[size_index]
    return TEMPLATES[template_index].format(word=word, metres=metres)


def all_texts() -> "list[str]":
    """Every text this world writes (sizes x templates), sizes in order."""
    return [describe(s, t) for s in range(len(SIZES)) for t in range(len(TEMPLATES))]


def unscaled_room(rng: np.random.Generator, palette) -> Room:
    """A room from the one size-free distribution (s = 1)."""
    room = Room(back=rng.uniform(3.6, 4.4), half_width=rng.uniform(1.8, 2.6), floor=rng.uniform(1.1, 1.5),
                height=rng.uniform(2.5, 3.0), palette=palette)
    return furnish(room, rng, largest=[0.9, 1.0, 0.8], nearest=1.4)


def scaled(room: Room, s: float) -> Room:
    """`room` with every length, texture period and the light fall-off times s."""
    return Room(back=room.back * s, half_width=room.half_width * s, floor=room.floor * s, height=room.height * s,
                palette=room.palette, boxes=[(lo * s, hi * s) for lo, hi in room.boxes],
                box_colours=list(room.box_colours), pattern_scale=room.pattern_scale * s,
                light_distance=room.light_distance * s)
