"""Pass two of `textdepth bag-dataset`: decode the frames chosen from the stamps, check
them, and write them in NYU's layout (colour PNG/JPEG, uint16 millimetre depth PNG, the
text as a captions file, a list line with the focal length of the frame's camera_info).
A frame that fails a check is skipped and counted by reason, with its first example.
"""
import bisect
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from textdepth_ros.bags import bagio
from textdepth_ros.bags.frame_pairing import NO_HEADER as UNREADABLE_COLOUR

MAX_MM = 65535  # uint16 millimetres: 65.535 m; farther readings are stored as 0 (no reading)


class DatasetWriter:
    """Decodes the selected frames of a bag (pass two) and writes them into `root`."""

    def __init__(self, root: Path, args):
        self.root, self.args = root, args
        self.lines = {"train": [], "test": []}
        self.skipped = Counter()
        self.examples = {}  # reason -> the first frame's message
        self.texts = Counter()
        self.frames = []  # frames.csv rows
        self.cameras = {}  # scene -> the intrinsics of its first written frame

    def skip(self, reason: str, detail: str = "") -> None:
        self.skipped[reason] += 1
        if detail:
            self.examples.setdefault(reason, detail)

    def write_bag(self, scan, pairs, bar) -> None:
        """Writes `pairs` (frame_pairing.Pair, split) of the bag `scan` (bag_dataset.BagScan)."""
        from textdepth_ros.ros.compressed import any_to_rgb8

        (self.root / scan.scene).mkdir(parents=True, exist_ok=True)
        by_order = {p.order: p for p in pairs}
        by_depth = {p.depth_stamp: p for p in pairs}
        colour, depth = {}, {}  # pending raw messages of a pair whose partner has not come yet
        order = -1
        reader = bagio.open_reader(scan.path)
        try:
            for topic, _, raw in bagio.iter_raw(reader, [scan.image_topic, scan.depth_topic]):
                if topic == scan.image_topic:
                    order += 1
                    pair = by_order.get(order)
                    if pair is None:
                        continue
                    colour[pair.order] = raw
                else:
                    try:
                        pair = by_depth.get(bagio.header_stamp_ns(raw))
                    except ValueError:
                        continue
                    if pair is None or pair.order in depth:
                        continue
                    depth[pair.order] = raw
                if pair.order in colour and pair.order in depth:
                    self._write_pair(scan, pair, colour.pop(pair.order), depth.pop(pair.order), any_to_rgb8)
                    bar.update(1)
        finally:
            reader.close()

    def _write_pair(self, scan, pair, colour_raw, depth_raw, any_to_rgb8) -> None:
        from textdepth_ros.bags.scoring import depth_in_metres
        from textdepth_ros.data.nyu import save_depth_png
        from textdepth_ros.ros.camera_info import image_camera_info

        try:
            colour_msg = bagio.decode(colour_raw, scan.image_type)
            rgb = any_to_rgb8(colour_msg)
        except (ValueError, RuntimeError) as exc:  # RuntimeError: rclpy cannot deserialize it
            return self.skip(UNREADABLE_COLOUR, f"{scan.path.name} image at {pair.image_stamp} ns: {exc}")
        try:
            metres = depth_in_metres(bagio.decode(depth_raw, scan.depth_type), self.args.gt_scale)
        except (ValueError, RuntimeError) as exc:
            return self.skip("unreadable depth image", f"{scan.path.name} depth at {pair.depth_stamp} ns: {exc}")
        height, width = rgb.shape[:2]
        if metres.shape != (height, width):
            return self.skip("depth size differs from the colour image (not aligned to colour)",
                             f"{scan.path.name} at {pair.image_stamp} ns: depth {metres.shape[1]}x{metres.shape[0]}, "
                             f"colour {width}x{height}")
        metres = np.where(np.isfinite(metres) & (metres > 0) & (metres * 1000.0 < MAX_MM + 0.5), metres, 0.0)
        if not metres.any():
            return self.skip("no valid depth pixel", f"{scan.path.name} depth at {pair.depth_stamp} ns")
        info = _nearest_info(scan.infos, pair.image_stamp)
        try:
            k = image_camera_info(info, colour_msg.header, height, width).k
        except ValueError as exc:
            return self.skip("unusable camera_info", f"{scan.path.name} at {pair.image_stamp} ns: {exc}")
        text = self.args.text or scan.texts[bisect.bisect_right(scan.text_times, scan.image_log_times[pair.order]) - 1]
        index = sum(len(v) for v in self.lines.values())
        rgb_rel = f"{scan.scene}/rgb_{index:06d}.{self.args.image_format}"
        depth_rel = f"{scan.scene}/depth_{index:06d}.png"
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if self.args.image_format == "jpg" else []
        if not cv2.imwrite(str(self.root / rgb_rel), bgr, params):
            raise OSError(f"could not write {self.root / rgb_rel}")
        save_depth_png(self.root / depth_rel, metres)
        (self.root / rgb_rel).with_suffix(".txt").write_text(" ".join(text.split()) + "\n")
        self.lines[pair.split].append(f"{rgb_rel} {depth_rel} {k[0]:.4f}")
        self.frames.append([rgb_rel, pair.split, scan.path.name, pair.image_stamp, pair.depth_stamp, text])
        self.texts[text] += 1
        self.cameras.setdefault(scan.scene, {"fx": k[0], "fy": k[4], "cx": k[2], "cy": k[5], "height": height,
                                             "width": width})


def _nearest_info(infos, stamp):
    """The camera_info nearest in stamp (the node holds the latest; a bag read offline
    can do better and take the one that belongs to the frame)."""
    stamps = [s for s, _ in infos]
    i = bisect.bisect_left(stamps, stamp)
    candidates = [j for j in (i - 1, i) if 0 <= j < len(infos)]
    return infos[min(candidates, key=lambda j: abs(stamps[j] - stamp))][1]
