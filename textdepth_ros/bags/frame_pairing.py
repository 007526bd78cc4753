"""Which frames of a recording make a training set, decided from header stamps alone
(no image decoded): colour paired with depth by stamp, and a train / held-out split by
time blocks with a guard gap, so that no held-out frame has a near-twin in training.

Pairing: each colour frame takes the depth frame nearest in stamp within the tolerance;
a depth frame goes to at most one colour frame (the closest one wins, as
message_filters' ApproximateTime would not pair one depth twice either). Colour frames
left without depth, and depth frames left without colour, are counted.

Splitting: a recording's time line, from its first image stamp, is cut into blocks of
`block_ns`; block g (numbered on across recordings, so short bags still add up) is
held out when round-half-up(g * fraction) steps up at g + 1: with fraction 0.2 the
held-out blocks are 2, 7, 12, ..., the middle of every five, so the held-out set
samples the whole recording and a recording of three blocks already has one. Frames
closer than `gap_ns` to a boundary to a block of the other split (in the same recording)
are left out: consecutive video frames are near-duplicates, and without the gap the
last training frame and the first held-out frame would be one frame apart.
"""
import bisect
import math
from collections import Counter
from dataclasses import dataclass

# Why a frame is not in the dataset (the keys of the counts a run reports).
NO_DEPTH = "no depth frame within the sync tolerance"
DEPTH_TAKEN = "its nearest depth frame is paired with a closer image"
REPEATED_STAMP = "image stamp repeated (the first one is kept)"
NO_HEADER = "unreadable colour image"  # too short to hold a header: the same reason as an undecodable one
BEFORE_TEXT = "before the first scene text"
GUARD = "within the guard gap of a train/held-out boundary"
STRIDE = "skipped by --stride"


@dataclass
class Pair:
    """One colour frame and its depth frame, by header stamp (ns). `order` is the colour
    frame's position in recording order (what the writer meets it as)."""
    image_stamp: int
    depth_stamp: int
    order: int
    split: str = ""  # "train" or "test" once split


def pair_by_stamp(image_stamps, depth_stamps, tolerance_ns: int, skipped: Counter) -> "list[Pair]":
    """Pairs of `image_stamps` (recording order; None = a message without a readable
    header) with `depth_stamps`, sorted by image stamp. Unpaired images are counted in
    `skipped` by reason, and so are depth frames nobody took."""
    seen, candidates = set(), []
    depth_sorted = sorted(set(depth_stamps))
    for order, stamp in enumerate(image_stamps):
        if stamp is None:
            skipped[NO_HEADER] += 1
            continue
        if stamp in seen:
            skipped[REPEATED_STAMP] += 1
            continue
        seen.add(stamp)
        nearest = _nearest(depth_sorted, stamp)
        if nearest is None or abs(nearest - stamp) > tolerance_ns:
            skipped[NO_DEPTH] += 1
            continue
        candidates.append((abs(nearest - stamp), stamp, nearest, order))
    taken, pairs = set(), []
    for _, stamp, depth, order in sorted(candidates):  # closest pairs first
        if depth in taken:
            skipped[DEPTH_TAKEN] += 1
            continue
        taken.add(depth)
        pairs.append(Pair(stamp, depth, order))
    unused = len(depth_stamps) - len(taken)
    if unused:
        skipped["depth frames without an image"] += unused
    return sorted(pairs, key=lambda p: p.image_stamp)


def _nearest(sorted_stamps, stamp):
    i = bisect.bisect_left(sorted_stamps, stamp)
    around = sorted_stamps[max(0, i - 1):i + 1]
    return min(around, key=lambda s: abs(s - stamp)) if around else None


def is_held_out(block: int, fraction: float) -> bool:
    """Block `block` (numbered from 0 over all recordings) is held out: the count of
    held-out blocks, round-half-up(g * fraction), steps up at g + 1."""
    return math.floor((block + 1) * fraction + 0.5) > math.floor(block * fraction + 0.5)


def split_by_time(pairs: "list[Pair]", start: int, first_block: int, block_ns: int, gap_ns: int, fraction: float,
                  skipped: Counter) -> "tuple[list[Pair], int]":
    """Marks each pair of one recording (sorted by stamp; `start`: its first image stamp)
    train or test, drops those in a guard gap (counted in `skipped`); returns (the kept
    pairs, the next recording's first block number)."""
    if not pairs:
        return [], first_block
    blocks = (pairs[-1].image_stamp - start) // block_ns + 1
    kept = []
    for pair in pairs:
        offset = pair.image_stamp - start
        local = offset // block_ns
        held = is_held_out(first_block + local, fraction)
        into_block = offset - local * block_ns
        near_previous = local > 0 and into_block < gap_ns and is_held_out(first_block + local - 1, fraction) != held
        near_next = (local + 1 < blocks and block_ns - into_block < gap_ns
                     and is_held_out(first_block + local + 1, fraction) != held)
        if near_previous or near_next:
            skipped[GUARD] += 1
            continue
        pair.split = "test" if held else "train"
        kept.append(pair)
    return kept, first_block + blocks


def take_every(pairs: "list[Pair]", stride: int, skipped: Counter) -> "list[Pair]":
    """Every `stride`-th pair (consecutive frames of a 30 Hz camera are near-copies)."""
    kept = pairs[::stride]
    if len(kept) < len(pairs):
        skipped[STRIDE] += len(pairs) - len(kept)
    return kept
