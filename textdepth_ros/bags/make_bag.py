"""Write an RGB-D dataset into a rosbag2 (mcap by default, sqlite3 on request) that
looks like a RealSense recording: colour, camera info, depth aligned to colour and the
scene text, stamped at a fixed rate.

Topics (names are options; --image-format jpeg|png and --depth-format compressedDepth
write image_transport's CompressedImage sub-topics .../compressed and .../compressedDepth):
  /camera/color/image_raw     sensor_msgs/Image rgb8
  /camera/color/camera_info   sensor_msgs/CameraInfo (NYU's intrinsics scaled to the
                              image size, or the ones given)
  /camera/depth/image_raw     sensor_msgs/Image 16UC1 millimetres (REP 118 raw form;
                              0 = no measurement), or 32FC1 metres with NaN
  /scene_text                 std_msgs/String, written when the text changes, half a
                              frame period before the image it belongs to

Input: an NYU-layout data root + list file (`textdepth make-dataset` writes one), or two
folders of RGB and depth PNGs paired in sorted order.

  textdepth make-dataset --out data/synth
  textdepth make-bag --root data/synth --list data/synth/test_list.txt --out bags/synth

The bag appears at --out only when complete: it is written into a hidden staging folder
beside it (.NAME.partial-*) and renamed. An error, a full disk, Ctrl-C or SIGTERM
removes the staging folder; one left by a SIGKILL is removed by the next make-bag to the
same --out. --overwrite replaces a bag folder (never a folder that is not a bag), and
only once the new bag is whole.
"""
import math
import sys
from pathlib import Path

import numpy as np

from textdepth_ros.atomic_io import terminate_as_interrupt
from textdepth_ros.errors import UserError
from textdepth_ros.bags import bagio

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def add_arguments(parser) -> None:
    src = parser.add_argument_group("input (an NYU-layout list, or two folders)")
    src.add_argument("--root", help="data root the list's paths are relative to (default: the list's folder)")
    src.add_argument("--list", dest="list_file", help="NYU-style list file: 'RGB DEPTH FOCAL' per line")
    src.add_argument("--rgb-dir", help="folder of RGB images (png/jpg), used instead of --list")
    src.add_argument("--depth-dir", help="folder of uint16 millimetre depth PNGs, paired with --rgb-dir in sorted order")
    src.add_argument("--limit", type=int, default=0, help="write at most this many frames (0 = all)")

    out = parser.add_argument_group("output bag")
    out.add_argument("--out", required=True, help="bag folder to create (must not exist unless --overwrite)")
    out.add_argument("--storage", choices=bagio.STORAGES, default="mcap", help="rosbag2 storage plugin (default mcap)")
    out.add_argument("--bag-version", type=int, choices=(8, 9), default=bagio.DEFAULT_BAG_VERSION,
                     help="metadata.yaml version: 8 is read by Humble..Kilted, 9 by Jazzy+ (default 8)")
    out.add_argument("--overwrite", action="store_true", help="replace an existing bag folder at --out")
    out.add_argument("--rate", type=float, default=10.0, help="frames per second of the stamps (default 10)")
    out.add_argument("--start-time", type=float, default=1_700_000_000.0,
                     help="stamp of the first frame, seconds since the epoch (default 1700000000)")
    out.add_argument("--frame-id", default="camera_color_optical_frame",
                     help="header frame_id of colour, depth (aligned to colour) and camera info")
    out.add_argument("--depth-encoding", choices=("16UC1", "32FC1"), default="16UC1",
                     help="depth as 16UC1 millimetres (default, what cameras publish) or 32FC1 metres")
    out.add_argument("--image-format", choices=("raw", "jpeg", "png"), default="raw",
                     help="colour as sensor_msgs/Image (raw, default) or CompressedImage on <image-topic>/compressed, "
                          "as robots record image_transport's compressed topic")
    out.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality 1-100 for --image-format jpeg (default 95)")
    out.add_argument("--depth-format", choices=("raw", "compressedDepth"), default="raw",
                     help="depth as sensor_msgs/Image (raw, default) or image_transport's compressedDepth (png) "
                          "CompressedImage on <depth-topic>/compressedDepth")

    cam = parser.add_argument_group("camera")
    cam.add_argument("--intrinsics", nargs=4, type=float, metavar=("FX", "FY", "CX", "CY"),
                     help="pinhole intrinsics (default: NYU Depth v2's Kinect, scaled to the image size)")
    cam.add_argument("--intrinsics-size", nargs=2, type=int, metavar=("HEIGHT", "WIDTH"),
                     help="image size the --intrinsics belong to (default: each image's own size)")

    txt = parser.add_argument_group("scene text")
    txt.add_argument("--text", help="one fixed description for every frame (default: from the scene folder)")
    txt.add_argument("--template", default="a photo of a {scene}", help="prompt for a scene folder name (default %(default)r)")
    txt.add_argument("--captions-dir", help="folder with one .txt caption per image (same relative path)")

    top = parser.add_argument_group("topic names")
    top.add_argument("--image-topic", default=bagio.DEFAULT_TOPICS["image"], help="colour image topic (default %(default)s)")
    top.add_argument("--camera-info-topic", default=bagio.DEFAULT_TOPICS["camera_info"], help="camera info topic (default %(default)s)")
    top.add_argument("--depth-topic", default=bagio.DEFAULT_TOPICS["depth"], help="depth topic (default %(default)s)")
    top.add_argument("--text-topic", default=bagio.DEFAULT_TOPICS["text"], help="scene text topic (default %(default)s)")


def _samples(args):
    """(root, [Sample]) from --list or from --rgb-dir/--depth-dir."""
    from textdepth_ros.data.nyu import NYU_FOCAL, Sample, read_list

    if args.list_file and args.rgb_dir:
        raise UserError("give either --list or --rgb-dir, not both")
    if args.list_file:
        root = Path(args.root) if args.root else Path(args.list_file).parent
        if not root.is_dir():
            raise UserError(f"data root not found: {root}")
        return root, read_list(args.list_file)
    if not args.rgb_dir:
        raise UserError("nothing to write: give --list (NYU layout) or --rgb-dir [--depth-dir]")
    rgb_dir = Path(args.rgb_dir)
    if not rgb_dir.is_dir():
        raise UserError(f"RGB folder not found: {rgb_dir}")
    rgbs = sorted(p for p in rgb_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not rgbs:
        raise UserError(f"no .png/.jpg images in {rgb_dir}")
    depths = [None] * len(rgbs)
    if args.depth_dir:
        depth_dir = Path(args.depth_dir)
        if not depth_dir.is_dir():
            raise UserError(f"depth folder not found: {depth_dir}")
        depths = sorted(p for p in depth_dir.iterdir() if p.suffix.lower() == ".png")
        if len(depths) != len(rgbs):
            raise UserError(f"{len(rgbs)} RGB images but {len(depths)} depth PNGs: they are paired in sorted order")
    # Absolute paths with root "/" keep nyu.load_* usable; the folder name is the scene.
    samples = [Sample(rgb=str(r.resolve()), depth=str(d.resolve()) if d else None, focal=NYU_FOCAL,
                      scene=rgb_dir.resolve().name) for r, d in zip(rgbs, depths)]
    return Path("/"), samples


def _intrinsics_for(args, height: int, width: int) -> dict:
    from textdepth_ros.data.nyu import NYU_INTRINSICS

    if args.intrinsics:
        fx, fy, cx, cy = args.intrinsics
        src_h, src_w = args.intrinsics_size or (height, width)
        given = {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "height": src_h, "width": src_w}
        return bagio.scale_intrinsics(given, height, width)
    return bagio.scale_intrinsics(NYU_INTRINSICS, height, width)


def frame_stamps(count: int, rate: float, start_time: float):
    """Nanosecond stamps of `count` frames at `rate` Hz (integer maths: no drift)."""
    start_ns = int(round(start_time * 1e9))
    return [start_ns + int(round(i * 1e9 / rate)) for i in range(count)]


def run(args) -> int:
    from tqdm import tqdm

    from textdepth_ros.data.nyu import load_depth, load_rgb
    from textdepth_ros.data.scene_text import SceneText

    if not (args.rate > 0 and math.isfinite(args.rate)):
        raise UserError(f"--rate must be a positive number of frames per second, got {args.rate}")
    if args.intrinsics_size and not args.intrinsics:
        raise UserError("--intrinsics-size needs --intrinsics")
    root, samples = _samples(args)
    if args.limit > 0:
        samples = samples[: args.limit]
    text_source = None if args.text else SceneText(args.template, args.captions_dir)
    stamps = frame_stamps(len(samples), args.rate, args.start_time)
    half_period = int(0.5e9 / args.rate)

    if not 1 <= args.jpeg_quality <= 100:
        raise UserError(f"--jpeg-quality must be 1..100, got {args.jpeg_quality}")
    image_topic, image_type = _stream_topic(args.image_topic, args.image_format != "raw", "color")
    depth_topic, depth_type = _stream_topic(args.depth_topic, args.depth_format != "raw", "depth")
    # SIGTERM unwinds like Ctrl-C, so the staging folder is removed (BagWriter).
    with terminate_as_interrupt(), bagio.BagWriter(args.out, args.storage, args.bag_version, args.overwrite) as bag:
        for folder in bag.cleared:
            print(f"removed {folder}, left by a make-bag that was killed", file=sys.stderr)
        bag.add_topic(image_topic, image_type)
        bag.add_topic(args.camera_info_topic, bagio.CAMERA_INFO_TYPE)
        bag.add_topic(depth_topic, depth_type)
        bag.add_topic(args.text_topic, bagio.STRING_TYPE, transient_local=True)
        last_text = None
        for sample, stamp in tqdm(list(zip(samples, stamps)), desc="make-bag", unit="frame"):
            rgb = load_rgb(root, sample)
            height, width = rgb.shape[:2]
            text = args.text or text_source.text_for(sample)
            if text != last_text:
                bag.write(args.text_topic, stamp - half_period, bagio.string_message(text))
                last_text = text
            bag.write(image_topic, stamp, _colour_message(rgb, args, stamp))
            info = bagio.camera_info_message(_intrinsics_for(args, height, width), height, width, stamp, args.frame_id)
            bag.write(args.camera_info_topic, stamp, info)
            if sample.depth is not None:
                depth = load_depth(root, sample)
                if depth.shape != (height, width):
                    raise UserError(f"depth of {sample.rgb} is {depth.shape[1]}x{depth.shape[0]} but the image is "
                                    f"{width}x{height}: depth must be aligned to the colour image")
                bag.write(depth_topic, stamp, _depth_message(depth, args, stamp))
    counts = ", ".join(f"{topic} {n}" for topic, n in bag.counts.items())
    print(f"wrote {args.out} ({args.storage}, {len(samples)} frames at {args.rate:g} Hz): {counts}")
    return 0


def _stream_topic(topic: str, compressed: bool, kind: str) -> tuple:
    """(topic, msgtype): compressed streams go on image_transport's sub-topic."""
    if not compressed:
        return topic, bagio.IMAGE_TYPE
    return f"{topic.rstrip('/')}/{bagio.COMPRESSED_SUFFIX[kind]}", bagio.COMPRESSED_TYPE


def _colour_message(rgb: np.ndarray, args, stamp: int):
    if args.image_format == "raw":
        return bagio.image_message(rgb, "rgb8", stamp, args.frame_id)
    from textdepth_ros.ros.compressed import encode_color

    fmt, data = encode_color(rgb, args.image_format, args.jpeg_quality)
    return bagio.compressed_image_message(fmt, data, stamp, args.frame_id)


def _depth_message(depth_m: np.ndarray, args, stamp: int):
    if args.depth_encoding == "16UC1":
        depth = np.clip(np.round(depth_m * 1000.0), 0, 65535).astype(np.uint16)
    else:
        depth = np.where(depth_m > 0, depth_m, np.nan).astype(np.float32)  # REP 117: NaN = no reading
    if args.depth_format == "raw":
        return bagio.image_message(depth, args.depth_encoding, stamp, args.frame_id)
    from textdepth_ros.ros.compressed import encode_compressed_depth

    fmt, data = encode_compressed_depth(depth, args.depth_encoding)
    return bagio.compressed_image_message(fmt, data, stamp, args.frame_id)
