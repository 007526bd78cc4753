"""Score a depth model on a rosbag2 against the depth sensor recorded in it.

--live     starts depth_node (the launch file's YAML, config/depth.yaml) as a
           subprocess, replays the bag into live topics at its recorded rate (or
           --rate), pairs each published depth with the bag's depth frame of the same
           header stamp, and reports the metrics, frames in / out / dropped and the
           end-to-end latency (image published -> depth received) percentiles.
--offline  the same bag straight through the model, no ROS graph: every frame scored.
           With nothing dropped, live and offline metrics agree frame for frame.
           Focal scaling as the node does it: the bag's camera_info (roi, binning and
           size applied) against the checkpoint's training camera (--focal-scaling).

Metrics are the PixelFormer protocol (metrics.py; Eigen crop only for 480x640 frames).
Ground truth: 16UC1 (units of --gt-scale, millimetres by default) or 32FC1 metres,
aligned to the colour image. Text: the bag's text topic, or one fixed --text.

  textdepth bag-eval bags/synth --live --json out/live.json
  textdepth bag-eval bags/synth --offline --json out/offline.json
"""
import sys
from dataclasses import dataclass, field
from pathlib import Path


from textdepth_ros.errors import UserError
from textdepth_ros.image_limits import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE
from textdepth_ros.yaml_io import read_yaml_mapping
from textdepth_ros.metrics import format_table
from textdepth_ros.bags import bagio
from textdepth_ros.bags.scoring import GT_ENCODINGS, add_bag_ground_truth, make_scorer, write_results

PARAMS_NAMESPACE = "/textdepth"  # launch/depth.launch.py's default namespace


def add_arguments(parser) -> None:
    parser.add_argument("bag", help="rosbag2 folder (mcap or sqlite3), e.g. from `textdepth make-bag`")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--live", action="store_true", help="replay through a running depth_node")
    mode.add_argument("--offline", action="store_true", help="run the model on every frame, no ROS graph")
    parser.add_argument("--json", help="write the summary and per-frame results to this JSON file")

    top = parser.add_argument_group("topics and encodings (defaults: realsense2_camera / make-bag names)")
    top.add_argument("--image-topic", default=bagio.DEFAULT_TOPICS["image"], help="colour image topic (default %(default)s)")
    top.add_argument("--camera-info-topic", default=bagio.DEFAULT_TOPICS["camera_info"],
                     help="camera info topic, replayed if present (default %(default)s)")
    top.add_argument("--depth-topic", default=bagio.DEFAULT_TOPICS["depth"],
                     help="ground-truth depth topic, aligned to colour (e.g. /camera/aligned_depth_to_color/image_raw)")
    top.add_argument("--text-topic", default=bagio.DEFAULT_TOPICS["text"], help="scene text topic (default %(default)s)")
    top.add_argument("--text", help="one fixed scene description instead of the bag's text topic")
    top.add_argument("--gt-scale", type=float, default=0.001,
                     help="metres per unit of 16UC1/mono16 ground truth (default 0.001: millimetres); 32FC1 is metres")
    top.add_argument("--sync-tolerance", type=float, default=0.0,
                     help="seconds: pair image and depth stamps this close (default 0: identical stamps, as aligned depth has)")
    top.add_argument("--no-crop", action="store_true", help="no Eigen crop even for 480x640 frames")

    model = parser.add_argument_group("model (defaults from --params-file, the launch file's YAML)")
    model.add_argument("--params-file", help="node parameters YAML (default: config/depth.yaml of the package)")
    model.add_argument("--params-namespace", default=PARAMS_NAMESPACE,
                       help="read --params-file for depth_node in this namespace, as ROS would (default %(default)s, "
                            "the launch file's): a key '/**/depth_node', '/**' or '/textdepth/depth_node' applies")
    model.add_argument("--model-config", help="model config name or YAML (overrides the params file)")
    model.add_argument("--checkpoint", help="trained checkpoint (overrides the params file)")
    model.add_argument("--device", help="auto, cpu, cuda or cuda:N (overrides the params file)")
    model.add_argument("--fp16", action="store_true", default=None, help="half-precision autocast (overrides the params file)")
    model.add_argument("--focal-scaling", choices=["auto", "off"],
                       help="depth x (the bag camera's focal length / the checkpoint's training one): auto (the params "
                            "file's default) or off (overrides the params file)")

    live = parser.add_argument_group("--live")
    live.add_argument("--rate", type=float, default=1.0, help="replay speed factor (default 1 = the recorded rate)")
    live.add_argument("--record", help="write what the node published (depth, uncertainty, camera info) into this new bag")
    live.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                      help="extra depth_node parameter, repeatable (e.g. max_range:=6.0)")
    live.add_argument("--start-timeout", type=float, default=180.0,
                      help="seconds to wait for the node to load its model and subscribe (default 180)")
    live.add_argument("--drain-timeout", type=float, default=10.0,
                      help="after the replay, stop once no depth arrived for this long (at least 3x the worst latency; default 10)")


# ------------------------------------------------------------------------ the bag
@dataclass
class BagPlan:
    """What the bag holds, checked before anything starts."""
    path: str
    image_topic: str
    depth_topic: str
    image_type: str  # Image, or CompressedImage (jpeg/png; the node runs with transport compressed)
    depth_type: str  # Image, or CompressedImage (compressedDepth)
    text_topic: "str | None"  # None: fixed --text
    camera_info_topic: "str | None"  # None: not in the bag
    image_stamps: list = field(default_factory=list)
    height: int = 0
    width: int = 0
    gt_encoding: str = ""
    out_of_order: int = 0
    paired: int = 0
    unreadable_images: dict = field(default_factory=dict)  # stamp -> why (told before the run)


def inspect_bag(args, params: dict) -> BagPlan:
    reader = bagio.open_reader(args.bag)
    try:
        table = bagio.topic_table(reader)
        image_topic, image_type, depth_topic, depth_type, text_topic = bagio.rgbd_topics(
            table, args.bag, args, "ground-truth depth", text_topic_needed=not args.text)
        info = args.camera_info_topic if table.get(args.camera_info_topic, ("",))[0] == bagio.CAMERA_INFO_TYPE else None
        plan = BagPlan(str(args.bag), image_topic, depth_topic, image_type, depth_type, text_topic, info)
        gt_stamps, gt_problem = set(), None
        for topic, _, raw in bagio.iter_raw(reader, [image_topic, depth_topic]):
            stamp = bagio.header_stamp_ns(raw)
            if topic == depth_topic:
                if not plan.gt_encoding:
                    plan.gt_encoding, gt_problem = _check_depth(raw, depth_type, topic, params)
                gt_stamps.add(stamp)
                continue
            if plan.image_stamps and stamp <= plan.image_stamps[-1]:
                plan.out_of_order += 1
            plan.image_stamps.append(stamp)
            try:  # every frame's header (raw frames: converted; the first readable one decoded)
                checked = colour_frame(bagio.decode(raw, image_type), params, decode=not plan.height)
            except ValueError as exc:
                plan.unreadable_images[stamp] = str(exc)
                continue
            if not plan.height:
                plan.height, plan.width = checked.shape[:2]
    finally:
        reader.close()
    if not plan.height:
        first = next(iter(plan.unreadable_images.values()), "no frames")
        raise UserError(f"colour image topic {image_topic}: no readable frame ({first})")
    if not plan.gt_encoding:
        raise UserError(f"ground-truth depth topic {depth_topic}: no readable frame ({gt_problem})")
    if len(set(plan.image_stamps)) != len(plan.image_stamps):
        raise UserError(f"images on {image_topic} share header stamps: outputs could not be paired with inputs")
    tolerance = int(args.sync_tolerance * 1e9)
    sorted_gt = sorted(gt_stamps)
    plan.paired = sum(1 for s in plan.image_stamps if _has_partner(sorted_gt, s, tolerance))
    if plan.paired == 0:
        raise UserError(f"no depth frame on {depth_topic} has the stamp of an image on {image_topic}; "
                        "record depth aligned to colour, or allow a difference with --sync-tolerance SECONDS")
    if plan.out_of_order:
        print(f"note: {plan.out_of_order} image stamps go backwards in recording order; frames are paired by stamp",
              file=sys.stderr)
    if plan.unreadable_images:
        stamp, why = next(iter(plan.unreadable_images.items()))
        print(f"note: {len(plan.unreadable_images)} colour frame(s) will be skipped as unreadable (first, stamp "
              f"{stamp}: {why}); they are counted", file=sys.stderr)
    return plan


def colour_frame(msg, params: dict, decode: bool = True):
    """A colour frame (Image or CompressedImage) as the node takes it: its RGB array
    (`decode`) or (height, width) from its header (a compressed frame's pixels unread),
    within the node's max_pixels / min_side. ValueError when the node would skip it."""
    from textdepth_ros.image_limits import frame_size_problem
    from textdepth_ros.ros.compressed import any_to_rgb8, compressed_size, is_compressed

    size = compressed_size(msg) if is_compressed(msg) else (msg.height, msg.width)
    problem = frame_size_problem(*size, {"max_pixels": int(params.get("max_pixels", DEFAULT_MAX_PIXELS)),
                                         "min_side": int(params.get("min_side", DEFAULT_MIN_SIDE))})
    if problem:
        raise ValueError(problem[1])
    if decode:
        return any_to_rgb8(msg)
    if not is_compressed(msg):
        any_to_rgb8(msg)  # a raw frame's check is its conversion (cheap)
    return size


def _check_depth(raw, msgtype, topic, params: dict) -> tuple:
    """(the ground truth's encoding, None) for a readable frame (16UC1 / mono16 / 32FC1,
    compressedDepth included), ("", why) for an unreadable one; a UserError for an
    encoding bag-eval does not score."""
    from textdepth_ros.ros.compressed import decode_compressed_depth, is_compressed

    try:
        msg = bagio.decode(raw, msgtype)
        encoding = (decode_compressed_depth(msg, int(params.get("max_pixels", DEFAULT_MAX_PIXELS)))[1]
                    if is_compressed(msg) else msg.encoding)
    except ValueError as exc:
        return "", str(exc)
    if encoding not in GT_ENCODINGS:
        raise UserError(f"ground-truth depth topic {topic} has encoding '{encoding}'; supported: {', '.join(GT_ENCODINGS)}")
    return encoding, None


def _has_partner(sorted_stamps, stamp, tolerance) -> bool:
    import bisect

    i = bisect.bisect_left(sorted_stamps, stamp - tolerance)
    return i < len(sorted_stamps) and sorted_stamps[i] <= stamp + tolerance


# ------------------------------------------------------------------------ model params
def node_parameters(args) -> dict:
    """depth_node's parameters from the YAML, matched to the node's name the way ROS
    matches them (a file keyed for another node is an error, not silently nothing),
    CLI overrides on top."""
    from textdepth_ros.paths import config_dir
    from textdepth_ros.ros.params_file import parameters_for

    path = Path(args.params_file) if args.params_file else config_dir() / "depth.yaml"
    doc = read_yaml_mapping(path, "params file")
    node = "/" + "/".join(p for p in [*args.params_namespace.split("/"), "depth_node"] if p)
    params = parameters_for(doc, node)
    if params is None:
        raise UserError(f"params file {path} has no entry for {node} (its keys: {', '.join(map(str, doc)) or 'none'}); "
                        "key it '/**/depth_node:' (any namespace) or set --params-namespace")
    for name in ("model_config", "checkpoint", "device", "fp16", "focal_scaling"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    if params.get("checkpoint") and not Path(params["checkpoint"]).is_file():
        raise UserError(f"checkpoint not found: {params['checkpoint']}")
    params["_file"] = str(path)
    return params


# ------------------------------------------------------------------------ offline
def run_offline(args, plan: BagPlan, params: dict) -> dict:
    from tqdm import tqdm

    from textdepth_ros.serving.inference import DepthEstimator
    from textdepth_ros.ros.camera_info import image_camera_info
    from textdepth_ros.ros.focal_scaling import FocalScaling, scale_to_training_camera
    from textdepth_ros.ros.text_input import clean_text

    estimator = DepthEstimator(params.get("model_config", "tiny"), params.get("checkpoint") or None,
                               params.get("device", "auto"), bool(params.get("fp16", False)),
                               seed=int(params.get("seed", 0)))
    encoder = getattr(estimator.model, "text_encoder", None)
    tokenizer, context = getattr(encoder, "tokenizer", None), getattr(encoder, "context_length", 77)
    # The node's rules: its default text until one arrives, each text cleaned the same way.
    text = clean_text(args.text or params.get("default_text", "an indoor scene"), tokenizer, context)[0]
    scorer = make_scorer(args)
    scaling = FocalScaling(params.get("focal_scaling", "auto"), estimator.training_camera)
    cameras = CameraInfos(args.bag, plan.camera_info_topic)
    said = []  # focal scaling's lines, into the report too

    def say(line):
        said.append(line)
        tqdm.write(line)
    topics = [plan.image_topic, plan.depth_topic] + ([plan.text_topic] if plan.text_topic else [])
    reader = bagio.open_reader(args.bag)
    try:
        with tqdm(total=len(plan.image_stamps), desc="bag-eval offline", unit="frame") as bar:
            for topic, _, raw in bagio.iter_raw(reader, topics):
                if topic == plan.text_topic:
                    text = clean_text(bagio.decode(raw, bagio.STRING_TYPE).data, tokenizer, context)[0] or text
                elif topic == plan.depth_topic:
                    add_bag_ground_truth(scorer, raw, args.gt_scale, msgtype=plan.depth_type,
                                         max_pixels=int(params.get("max_pixels", DEFAULT_MAX_PIXELS)))
                else:
                    bar.update(1)
                    stamp = bagio.header_stamp_ns(raw)
                    try:
                        msg = bagio.decode(raw, plan.image_type)
                        rgb = colour_frame(msg, params)
                    except ValueError as exc:  # skipped and counted, as the node does
                        if stamp not in plan.unreadable_images and not plan.unreadable_images:
                            tqdm.write(f"note: a colour frame was skipped as unreadable (stamp {stamp}: {exc}); "
                                       "further ones are counted", file=sys.stderr)
                        plan.unreadable_images[stamp] = str(exc)
                        continue
                    pred = estimator.predict(rgb, text)
                    info = _image_info(image_camera_info, cameras.at(stamp), msg.header, rgb.shape[:2])
                    pred = scale_to_training_camera(scaling, pred, info, say)
                    scorer.add_prediction(stamp, pred.depth, latency_ms=pred.forward_ms)
    finally:
        reader.close()
    n, skipped = len(plan.image_stamps), len(plan.unreadable_images)
    return {"mode": "offline", "model": estimator.describe(), "frames_in": n, "frames_out": n - skipped,
            "frames_dropped": 0, "latency_kind": "model forward time", "focal_scaling": said, "scorer": scorer}


class CameraInfos:
    """The bag's camera_info messages by header stamp: a frame gets the one with its own
    stamp, else the newest before it, which is the one the node holds when it publishes
    that frame (drivers publish each frame's camera_info with it)."""

    def __init__(self, bag, topic):
        self.stamps, self.messages = [], []
        if topic is None:
            return
        reader = bagio.open_reader(bag)
        try:
            pairs = sorted(((bagio.header_stamp_ns(raw), bytes(raw)) for _, _, raw in bagio.iter_raw(reader, [topic])),
                           key=lambda pair: pair[0])
        finally:
            reader.close()
        self.stamps = [stamp for stamp, _ in pairs]
        self.messages = [bagio.decode(raw, bagio.CAMERA_INFO_TYPE) for _, raw in pairs]

    def at(self, stamp_ns: int):
        import bisect

        i = bisect.bisect_right(self.stamps, stamp_ns)
        return self.messages[i - 1] if i else None


def _image_info(image_camera_info, camera, header, size):
    """The CameraInfo the node would publish with this frame, or None (none yet, or unusable)."""
    if camera is None:
        return None
    try:
        return image_camera_info(camera, header, *size)
    except ValueError:
        return None


# ------------------------------------------------------------------------ report
def run(args) -> int:
    if not args.rate > 0:
        raise UserError(f"--rate must be positive, got {args.rate}")
    params = node_parameters(args)
    plan = inspect_bag(args, params)
    if args.offline:
        result = run_offline(args, plan, params)
    else:
        from textdepth_ros.bags.live_eval import run_live

        result = run_live(args, plan, params)
    scorer = result.pop("scorer")
    summary = scorer.summary()
    header = {"bag": str(args.bag), **result, "rate": args.rate if args.live else None,
              "images_with_ground_truth": plan.paired, "image_size": [plan.height, plan.width],
              "ground_truth_encoding": plan.gt_encoding, "out_of_order_stamps": plan.out_of_order,
              "images_unreadable": len(plan.unreadable_images), "ground_truth_unreadable": scorer.gt_unreadable}
    print_report(header, summary)
    if args.json:
        print(f"results: {write_results(args.json, summary, scorer.frames, header)}")
    return 0


def print_report(header: dict, summary: dict) -> None:
    metrics = summary["metrics"]
    print(f"\n{header['mode']} evaluation of {header['bag']}  ({header['model']})")
    if metrics["count"]:
        print(format_table(metrics))
    print(f"frames in {header['frames_in']}, out {header['frames_out']}, dropped {header['frames_dropped']}; "
          f"scored {summary['frames_scored']} (with valid ground truth: {metrics['count']})")
    if header["images_unreadable"] or header["ground_truth_unreadable"]:
        print(f"skipped as unreadable: {header['images_unreadable']} colour frame(s), "
              f"{header['ground_truth_unreadable']} ground-truth frame(s)")
    lat = summary["latency_ms"]
    if lat["count"]:
        print(f"{header['latency_kind']} ms: p50 {lat['p50']:.1f}  p90 {lat['p90']:.1f}  p99 {lat['p99']:.1f}  "
              f"max {lat['max']:.1f}")
