"""Turn RGB-D rosbags into a training set: `train` and `eval` read it as they read NYU.

  textdepth bag-dataset ~/bags/lab_run1 ~/bags/lab_run2 --out data/lab \\
      --depth-topic /camera/camera/aligned_depth_to_color/image_raw --text "a robotics lab"

From each bag (rosbag2, mcap or sqlite3): colour (Image or image_transport's compressed),
depth aligned to colour (16UC1 in --gt-scale units, 32FC1 metres, or compressedDepth),
the colour camera_info, and a std_msgs/String text topic or one fixed --text. Colour and
depth are paired by header stamp (--sync-tolerance), then split into train and held-out
by time blocks with a guard gap between them (frame_pairing.py), so that no held-out
frame has a near-twin in the train split.

Output (NYU's layout, so nothing downstream is bag-specific):
  OUT/<bag name>/rgb_000000.png         colour (or .jpg with --image-format jpg)
  OUT/<bag name>/depth_000000.png       uint16 millimetres, 0 = no reading
  OUT/<bag name>/rgb_000000.txt         the frame's scene text (a captions file)
  OUT/train_list.txt, OUT/test_list.txt `RGB DEPTH FOCAL` lines; FOCAL = fx of the
                                        colour camera_info (roi and binning applied)
  OUT/frames.csv                        each frame's split, bag and header stamps (ns), text
  OUT/dataset.json                      sources, topics, counts, skipped frames by reason
Frames that cannot be used are skipped and counted by reason. The folder appears at
--out only when complete (built beside it and renamed); bad input is one line and
exit code 2, and leaves nothing behind.
"""
import csv
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from textdepth_ros.atomic_io import StagedFolder, terminate_as_interrupt
from textdepth_ros.bags import bagio
from textdepth_ros.bags.dataset_writer import DatasetWriter
from textdepth_ros.bags.frame_pairing import BEFORE_TEXT, pair_by_stamp, split_by_time, take_every
from textdepth_ros.errors import UserError

MARKER = "textdepth bag-dataset"  # dataset.json's "created_by": what --overwrite may replace


def add_arguments(parser) -> None:
    parser.add_argument("bags", nargs="+", metavar="BAG", help="rosbag2 folder(s) (mcap or sqlite3)")
    parser.add_argument("--out", required=True, help="dataset folder to create (must not exist unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset folder an earlier bag-dataset wrote")

    top = parser.add_argument_group("topics (defaults: realsense2_camera / make-bag names)")
    top.add_argument("--image-topic", default=bagio.DEFAULT_TOPICS["image"], help="colour topic (default %(default)s; "
                     "<topic>/compressed is used when only that is recorded)")
    top.add_argument("--depth-topic", default=bagio.DEFAULT_TOPICS["depth"],
                     help="depth aligned to colour (default %(default)s; e.g. /camera/camera/aligned_depth_to_color/"
                          "image_raw; <topic>/compressedDepth is used when only that is recorded)")
    top.add_argument("--camera-info-topic", default=bagio.DEFAULT_TOPICS["camera_info"],
                     help="the colour camera_info: the focal column comes from its K (default %(default)s)")
    top.add_argument("--text-topic", default=bagio.DEFAULT_TOPICS["text"],
                     help="scene text topic, std_msgs/String (default %(default)s); a frame gets the last text "
                          "recorded before it")
    top.add_argument("--text", help="one fixed scene description for every frame instead of the text topic")
    top.add_argument("--gt-scale", type=float, default=0.001,
                     help="metres per unit of 16UC1/mono16 depth (default 0.001: millimetres); 32FC1 is metres")

    pair = parser.add_argument_group("pairing and splitting")
    pair.add_argument("--sync-tolerance", type=float, default=0.01,
                      help="seconds: pair colour with the depth frame nearest in stamp within this (default "
                           "%(default)s; aligned depth usually has the colour frame's own stamp)")
    pair.add_argument("--stride", type=int, default=1,
                      help="keep every N-th pair (default 1: all; a 30 Hz camera's neighbours are near-copies)")
    pair.add_argument("--test-fraction", type=float, default=0.2,
                      help="share of time blocks held out for evaluation (default %(default)s)")
    pair.add_argument("--block-seconds", type=float, default=10.0,
                      help="length of the time blocks that go to train or held-out whole (default %(default)s)")
    pair.add_argument("--gap-seconds", type=float, default=1.0,
                      help="frames closer than this to a train/held-out boundary are left out (default %(default)s)")
    parser.add_argument("--image-format", choices=("png", "jpg"), default="png",
                        help="how colour is stored (default png: lossless; jpg: quality 95, as NYU's)")


@dataclass
class BagScan:
    """Stamps and small messages of one bag, read without decoding an image."""
    path: Path
    scene: str
    image_topic: str
    image_type: str
    depth_topic: str
    depth_type: str
    info_topic: str
    text_topic: "str | None"
    image_stamps: list = field(default_factory=list)  # recording order
    image_log_times: list = field(default_factory=list)
    depth_stamps: list = field(default_factory=list)
    infos: list = field(default_factory=list)  # (stamp, CameraInfo), sorted by stamp
    text_times: list = field(default_factory=list)  # log times of the texts
    texts: list = field(default_factory=list)


def _check_args(args) -> None:
    if not 0 < args.test_fraction < 1:
        raise UserError(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")
    for name in ("block_seconds", "gap_seconds", "sync_tolerance"):
        value, positive = getattr(args, name), name == "block_seconds"
        if not (value >= 0 and np.isfinite(value)) or (positive and value == 0):
            raise UserError(f"--{name.replace('_', '-')} must be a {'positive' if positive else 'non-negative'} "
                            f"number of seconds, got {value}")
    if args.gap_seconds * 2 >= args.block_seconds:
        raise UserError(f"--gap-seconds {args.gap_seconds} leaves nothing of a {args.block_seconds} s block "
                        "(it must be under half of --block-seconds)")
    if args.stride < 1:
        raise UserError(f"--stride must be >= 1, got {args.stride}")
    if not args.gt_scale > 0:
        raise UserError(f"--gt-scale must be positive, got {args.gt_scale}")
    if args.text is not None and not args.text.split():
        raise UserError("--text is empty")


def scan_bag(path, scene: str, args) -> BagScan:
    """Topics checked, then every stamp and text read (pass one)."""
    from tqdm import tqdm

    reader = bagio.open_reader(path)
    try:
        table = bagio.topic_table(reader)
        image_topic, image_type, depth_topic, depth_type, text_topic = bagio.rgbd_topics(
            table, path, args, "depth", text_topic_needed=args.text is None)
        bagio.require_topic(table, args.camera_info_topic, bagio.CAMERA_INFO_TYPE, "camera_info (the focal column)",
                            "--camera-info-topic")
        scan = BagScan(Path(path), scene, image_topic, image_type, depth_topic, depth_type, args.camera_info_topic,
                       text_topic)
        topics = [t for t in (image_topic, depth_topic, args.camera_info_topic, text_topic) if t]
        with tqdm(total=sum(table[t][1] for t in topics), desc=f"scan {scan.path.name}", unit="msg") as bar:
            for topic, log_time, raw in bagio.iter_raw(reader, topics):
                bar.update(1)
                if topic == text_topic:
                    text = " ".join(bagio.decode(raw, bagio.STRING_TYPE).data.split())
                    if text:  # an empty text keeps the previous one, as the node does
                        scan.text_times.append(log_time)
                        scan.texts.append(text)
                    continue
                try:
                    stamp = bagio.header_stamp_ns(raw)
                except ValueError:
                    stamp = None  # a message too short for a header: its frame is counted as unreadable later
                if topic == image_topic:
                    scan.image_stamps.append(stamp)
                    scan.image_log_times.append(log_time)
                elif topic == depth_topic:
                    if stamp is not None:
                        scan.depth_stamps.append(stamp)
                elif stamp is not None:
                    try:
                        scan.infos.append((stamp, bagio.decode(raw, bagio.CAMERA_INFO_TYPE)))
                    except RuntimeError:  # rclpy cannot deserialize it: the nearest readable one serves
                        continue
    finally:
        reader.close()
    scan.infos.sort(key=lambda item: item[0])
    if not scan.infos:
        raise UserError(f"camera_info topic '{args.camera_info_topic}' of {path} has no readable message")
    return scan


def select_frames(scan: BagScan, args, first_block: int, skipped: Counter):
    """Pairs of one bag, filtered and split; returns (pairs, next block number)."""
    pairs = pair_by_stamp(scan.image_stamps, scan.depth_stamps, round(args.sync_tolerance * 1e9), skipped)
    if scan.text_topic:
        first_text = scan.text_times[0] if scan.text_times else None
        with_text = [p for p in pairs if first_text is not None and scan.image_log_times[p.order] >= first_text]
        if len(with_text) < len(pairs):
            skipped[BEFORE_TEXT] += len(pairs) - len(with_text)
        pairs = with_text
    pairs = take_every(pairs, args.stride, skipped)
    start = min((s for s in scan.image_stamps if s is not None), default=0)
    return split_by_time(pairs, start, first_block, round(args.block_seconds * 1e9), round(args.gap_seconds * 1e9),
                         args.test_fraction, skipped)


def scene_names(paths) -> "list[str]":
    """One folder name per bag: its own name, made safe; repeats get _2, _3."""
    names, used = [], Counter()
    for path in paths:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).resolve().name).strip("._") or "bag"
        used[base] += 1
        names.append(base if used[base] == 1 else f"{base}_{used[base]}")
    return names


def check_out(out: Path, overwrite: bool) -> None:
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise UserError(f"{out} already exists (choose another --out or pass --overwrite)")
    try:
        created_by = json.loads((out / "dataset.json").read_text()).get("created_by")
    except (OSError, ValueError, AttributeError):
        created_by = None
    if not out.is_dir() or out.is_symlink() or created_by != MARKER:
        raise UserError(f"refusing to overwrite {out}: it is not a dataset folder written by bag-dataset")


def run(args) -> int:
    from tqdm import tqdm

    _check_args(args)
    out = Path(args.out)
    check_out(out, args.overwrite)
    scans, selected, skipped, block = [], [], Counter(), 0
    for path, scene in zip(args.bags, scene_names(args.bags)):
        scan = scan_bag(path, scene, args)
        pairs, block = select_frames(scan, args, block, skipped)
        scans.append(scan)
        selected.append(pairs)
    chosen = {split: sum(p.split == split for pairs in selected for p in pairs) for split in ("train", "test")}
    if not chosen["train"] and not chosen["test"]:
        raise UserError(f"no colour frame paired with a depth frame and a text (skipped: {_reasons(skipped)}); check "
                        f"the topics and --sync-tolerance (now {args.sync_tolerance:g} s)")
    if not chosen["train"] or not chosen["test"]:
        empty = "train" if not chosen["train"] else "held-out"
        raise UserError(f"the {empty} split is empty: {chosen['train']} train and {chosen['test']} held-out frames "
                        f"over {block} time block(s) of {args.block_seconds:g} s (skipped: {_reasons(skipped)}); "
                        "lower --block-seconds or --gap-seconds")
    with terminate_as_interrupt():
        staged = StagedFolder(out)
        try:
            for folder in staged.cleared:
                print(f"removed {folder}, left by a bag-dataset that was killed", file=sys.stderr)
            writer = DatasetWriter(staged.path, args)
            with tqdm(total=sum(map(len, selected)), desc="bag-dataset", unit="frame") as bar:
                for scan, pairs in zip(scans, selected):
                    writer.write_bag(scan, pairs, bar)
            _finish(writer, scans, skipped, args)
            if out.exists():
                check_out(out, args.overwrite)  # still ours to replace
            staged.commit()
        except OSError as exc:
            staged.discard()
            raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
        except BaseException:
            staged.discard()
            raise
    _report(out, writer, skipped)
    return 0


def _finish(writer: DatasetWriter, scans, skipped: Counter, args) -> None:
    """The lists and dataset.json, or a UserError when too little was usable."""
    skipped.update(writer.skipped)
    for split, name in (("train", "train"), ("test", "held-out")):
        if not writer.lines[split]:
            common = [r for r, _ in writer.skipped.most_common(2)]  # what went wrong most, with one frame each
            examples = "; ".join(f"{r}: {writer.examples[r]}" for r in common if r in writer.examples)
            raise UserError(f"no usable {name} frame (skipped: {_reasons(skipped)})" + (f"; e.g. {examples}" if examples
                                                                                       else ""))
    for split in ("train", "test"):
        (writer.root / f"{split}_list.txt").write_text("".join(line + "\n" for line in writer.lines[split]))
    with open(writer.root / "frames.csv", "w", newline="") as f:
        rows = csv.writer(f, lineterminator="\n")
        rows.writerow(["rgb", "split", "bag", "image_stamp_ns", "depth_stamp_ns", "text"])
        rows.writerows(writer.frames)
    summary = {
        "created_by": MARKER,
        "bags": [{"path": str(s.path.resolve()), "scene": s.scene, "image_topic": s.image_topic,
                  "depth_topic": s.depth_topic, "camera_info_topic": s.info_topic, "text_topic": s.text_topic,
                  "images": len(s.image_stamps), "depth_frames": len(s.depth_stamps)} for s in scans],
        "train": len(writer.lines["train"]), "test": len(writer.lines["test"]),
        "skipped": dict(skipped.most_common()), "skipped_examples": writer.examples,
        "options": {k: getattr(args, k) for k in ("text", "gt_scale", "sync_tolerance", "stride", "test_fraction",
                                                  "block_seconds", "gap_seconds", "image_format")},
        "cameras": writer.cameras, "texts": dict(writer.texts.most_common()),
    }
    (writer.root / "dataset.json").write_text(json.dumps(summary, indent=2) + "\n")


def _reasons(skipped: Counter) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in skipped.most_common()) or "none"


def _report(out: Path, writer: DatasetWriter, skipped: Counter) -> None:
    print(f"wrote {out}: {len(writer.lines['train'])} train and {len(writer.lines['test'])} held-out frames, "
          f"{len(writer.texts)} distinct text(s)")
    for reason, n in skipped.most_common():
        print(f"  skipped {n}: {reason}")
    for scene, cam in writer.cameras.items():
        print(f"  {scene}: {cam['width']}x{cam['height']}, fx {cam['fx']:.2f} px")
    print("train (the NYU recipe) and evaluate on it (captions = the frames' texts; no NYU crop or border mask):\n"
          f"  textdepth train --out runs/{out.name} --set data.root={out} "
          f"--set data.train_list={out}/train_list.txt --set data.test_list={out}/test_list.txt "
          f"--set data.captions_dir={out} --set eval.crop=none --set augment.border_mask=false\n"
          f"  textdepth eval --checkpoint runs/{out.name}/best_abs_rel.safetensors --data-root {out} "
          f"--test-list {out}/test_list.txt --captions-dir {out} --crop none --out runs/{out.name}/eval")
