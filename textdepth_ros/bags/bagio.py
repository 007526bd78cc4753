"""rosbag2 files without ROS 2 installed: the pure-Python `rosbags` library writes and
reads them (mcap and sqlite3). Its CDR bytes are exactly rclpy's serialization, so a
message read from a bag can be published raw, and a message received raw can be
written unchanged.

Writing builds messages with the rosbags typestore (no rclpy needed for make-bag);
reading hands out raw bytes, and `decode()` turns them into rclpy messages so the
bag tools and the node share one image decoder (conversions.py).
"""
import contextlib
import functools
import importlib
import struct
from pathlib import Path

import numpy as np

from textdepth_ros.atomic_io import StagedFolder
from textdepth_ros.errors import UserError
from textdepth_ros.yaml_io import one_line

STORAGES = ("mcap", "sqlite3")
# Metadata version 8 (Iron's): QoS profiles as one YAML string, as older readers expect;
# Jazzy and Kilted read it too. Version 9 is Jazzy's own.
DEFAULT_BAG_VERSION = 8

# Topic defaults: the realsense2_camera names, so a robot's bag needs no options.
DEFAULT_TOPICS = {
    "image": "/camera/color/image_raw",
    "camera_info": "/camera/color/camera_info",
    "depth": "/camera/depth/image_raw",
    "text": "/scene_text",
}
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
# image_transport's topic suffixes for compressed colour and depth
COMPRESSED_SUFFIX = {"color": "compressed", "depth": "compressedDepth"}
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
STRING_TYPE = "std_msgs/msg/String"


@functools.lru_cache(maxsize=1)
def typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def qos_profile(transient_local: bool = False, depth: int = 10):
    """The offered QoS written into metadata; `ros2 bag play` republishes with it, so a
    transient-local /scene_text still reaches a node that starts after the text."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(sec=0, nsec=0)  # rmw's "default" (= infinite) durations
    return Qos(
        history=QosHistory.KEEP_LAST, depth=depth, reliability=QosReliability.RELIABLE,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=zero, lifespan=zero, liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero, avoid_ros_namespace_conventions=False,
    )


# ---------------------------------------------------------------- message builders
def header(stamp_ns: int, frame_id: str):
    types = typestore().types
    stamp = types["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def image_message(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
    """rgb8 (HxWx3 uint8), 16UC1 (HxW uint16) or 32FC1 (HxW float32), little-endian rows."""
    layouts = {"rgb8": (np.uint8, 3), "16UC1": (np.dtype("<u2"), 1), "32FC1": (np.dtype("<f4"), 1)}
    dtype, channels = layouts[encoding]
    array = np.ascontiguousarray(array, dtype=dtype)
    height, width = array.shape[:2]
    return typestore().types[IMAGE_TYPE](
        header=header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=width * channels * np.dtype(dtype).itemsize,
        data=array.reshape(-1).view(np.uint8),
    )


def compressed_image_message(fmt: str, data: bytes, stamp_ns: int, frame_id: str):
    """sensor_msgs/CompressedImage (see ros/compressed.py for the formats)."""
    return typestore().types[COMPRESSED_TYPE](header=header(stamp_ns, frame_id), format=fmt,
                                               data=np.frombuffer(data, np.uint8))


def resolve_image_topic(table: dict, topic: str, kind: str, role: str, option: str) -> tuple:
    """(topic, msgtype) of an image stream in a bag: `topic` itself (Image or
    CompressedImage), else image_transport's `<topic>/compressed` (kind 'color') or
    `<topic>/compressedDepth` (kind 'depth'), as robots record them."""
    if topic not in table:
        candidate = f"{topic.rstrip('/')}/{COMPRESSED_SUFFIX[kind]}"
        if table.get(candidate, ("",))[0] == COMPRESSED_TYPE:
            topic = candidate
    msgtype = table.get(topic, (IMAGE_TYPE,))[0]
    require_topic(table, topic, msgtype if msgtype == COMPRESSED_TYPE else IMAGE_TYPE, role, option)
    return topic, msgtype


def camera_info_message(intrinsics: dict, height: int, width: int, stamp_ns: int, frame_id: str):
    """Pinhole, no distortion (NYU's images are undistorted; RealSense colour is too)."""
    fx, fy, cx, cy = (float(intrinsics[k]) for k in ("fx", "fy", "cx", "cy"))
    types = typestore().types
    return types[CAMERA_INFO_TYPE](
        header=header(stamp_ns, frame_id), height=height, width=width, distortion_model="plumb_bob",
        d=np.zeros(5), k=np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], dtype=np.float64),
        r=np.eye(3).reshape(-1), p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], dtype=np.float64),
        binning_x=0, binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def string_message(text: str):
    return typestore().types[STRING_TYPE](data=text)


def scale_intrinsics(intrinsics: dict, height: int, width: int) -> dict:
    """Intrinsics given at intrinsics['height'] x ['width'] -> the same camera at height x width
    (a resized image: focal lengths and centre scale with the axis; pixel-centre convention)."""
    src_h, src_w = intrinsics.get("height", height), intrinsics.get("width", width)
    sx, sy = width / src_w, height / src_h
    return {
        "fx": intrinsics["fx"] * sx, "fy": intrinsics["fy"] * sy,
        "cx": (intrinsics["cx"] + 0.5) * sx - 0.5, "cy": (intrinsics["cy"] + 0.5) * sy - 0.5,
        "height": height, "width": width,
    }


# ------------------------------------------------------------------------ writing
class BagWriter:
    """`with BagWriter(path, "mcap") as bag: bag.add_topic(...); bag.write(...)`.

    Writes go to a bag whose metadata.yaml is the one `ros2 bag info/play` reads. The
    bag is built in a staging folder beside `path` and moved there only when complete
    (atomic_io.StagedFolder): an error, a full disk or an interrupt leaves no partial
    bag, and `overwrite` replaces a previous bag only once the new one is whole."""

    def __init__(self, path, storage: str = "mcap", version: int = DEFAULT_BAG_VERSION, overwrite: bool = False):
        if storage not in STORAGES:
            raise UserError(f"unknown bag storage '{storage}' (one of {', '.join(STORAGES)})")
        self.path = Path(path)
        if self.path.exists() or self.path.is_symlink():
            if not overwrite:
                raise UserError(f"{self.path} already exists (choose another path or pass --overwrite)")
            if not self.path.is_dir() or (not (self.path / "metadata.yaml").is_file() and any(self.path.iterdir())):
                raise UserError(f"refusing to overwrite {self.path}: it is not a bag folder")
        self.storage, self.version = storage, version
        self._staged = self._writer = None
        self._connections = {}
        self.counts = {}
        self.cleared = []  # staging folders of killed runs removed on the way

    def __enter__(self):
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        try:
            self._staged = StagedFolder(self.path)
            self.cleared = self._staged.cleared
            self._writer = Writer(self._staged.path, version=self.version, storage_plugin=plugin)
            self._writer.open()
        except BaseException as exc:
            self._discard()
            raise _write_error(exc, self.path) from None
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self._writer.close()  # writes the last chunk and metadata.yaml: a full disk can show here
                self._staged.commit()
                return False
            except BaseException as error:
                exc = error
        with contextlib.suppress(Exception):
            self._writer.abort()
        self._discard()
        converted = _write_error(exc, self.path)
        if converted is exc and exc_type is not None:
            return False  # let the original exception propagate unchanged
        raise converted from None

    def _discard(self):
        if self._staged is not None:
            self._staged.discard()

    def add_topic(self, topic: str, msgtype: str, transient_local: bool = False) -> None:
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=typestore(), offered_qos_profiles=[qos_profile(transient_local)])
        self.counts[topic] = 0

    def write(self, topic: str, timestamp_ns: int, message) -> None:
        connection = self._connections[topic]
        self.write_raw(topic, timestamp_ns, typestore().serialize_cdr(message, connection.msgtype))

    def write_raw(self, topic: str, timestamp_ns: int, raw) -> None:
        self._writer.write(self._connections[topic], int(timestamp_ns), raw)
        self.counts[topic] += 1


def _write_error(exc: BaseException, path) -> BaseException:
    """What a failed bag write means to a user: a full disk, a read-only folder (OSError,
    SQLite's "database or disk is full", rosbags' WriterError) is one UserError line;
    anything else (a bug, Ctrl-C) stays as it is."""
    import sqlite3

    from rosbags.rosbag2 import WriterError

    if isinstance(exc, OSError):
        return UserError(f"cannot write bag {path}: {exc.strerror or exc}")
    if isinstance(exc, (sqlite3.Error, WriterError)):
        return UserError(f"cannot write bag {path}: {' '.join(str(exc).split())}")
    return exc


# ------------------------------------------------------------------------ reading
def open_reader(path):
    """An opened rosbags Reader, or a UserError that says what is wrong with `path`."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise UserError(f"bag not found: {path}")
    if path.is_file():  # a bare .mcap/.db3 handed in: rosbag2 bags are folders
        if (path.parent / "metadata.yaml").is_file():
            path = path.parent
        else:
            raise UserError(f"{path} is a file; a rosbag2 bag is the folder holding metadata.yaml")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises several types for bad bags (deep or bad YAML too)
        raise UserError(f"cannot open bag {path}: {one_line(exc)}") from None
    return reader


def topic_table(reader) -> dict:
    """{topic: (msgtype, message count)} of an open reader."""
    table = {}
    for connection in reader.connections:
        msgtype, count = table.get(connection.topic, (connection.msgtype, 0))
        table[connection.topic] = (msgtype, count + connection.msgcount)
    return table


def require_topic(table: dict, topic: str, msgtype: str, role: str, option: str) -> None:
    if topic not in table:
        present = ", ".join(f"{t} ({m.split('/')[-1]})" for t, (m, _) in sorted(table.items())) or "none"
        raise UserError(f"the bag has no {role} topic '{topic}' (set it with {option}); topics in the bag: {present}")
    if table[topic][0] != msgtype:
        raise UserError(f"{role} topic '{topic}' has type {table[topic][0]}, expected {msgtype}")
    if table[topic][1] == 0:
        raise UserError(f"{role} topic '{topic}' has no messages")


def rgbd_topics(table: dict, path, args, depth_role: str, text_topic_needed: bool) -> tuple:
    """(image topic, its type, depth topic, its type, text topic or None) of an RGB-D bag
    with `args`' --image-topic, --depth-topic and --text-topic (the last only when
    `text_topic_needed`: no --text given); one line when the bag is empty or lacks one."""
    if not table or sum(n for _, n in table.values()) == 0:
        raise UserError(f"the bag {path} is empty")
    image_topic, image_type = resolve_image_topic(table, args.image_topic, "color", "colour image", "--image-topic")
    depth_topic, depth_type = resolve_image_topic(table, args.depth_topic, "depth", depth_role, "--depth-topic")
    text_topic = None
    if text_topic_needed:
        if args.text_topic not in table:
            raise UserError(f"the bag {path} has no text topic '{args.text_topic}': set --text-topic, or give one "
                            "description with --text")
        require_topic(table, args.text_topic, STRING_TYPE, "scene text", "--text-topic")
        text_topic = args.text_topic
    return image_topic, image_type, depth_topic, depth_type, text_topic

def iter_raw(reader, topics):
    """(topic, log time ns, raw CDR bytes) of `topics`, in log-time order."""
    wanted = set(topics)
    connections = [c for c in reader.connections if c.topic in wanted]
    for connection, timestamp, raw in reader.messages(connections=connections):
        yield connection.topic, timestamp, raw


@functools.lru_cache(maxsize=None)
def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy class sensor_msgs.msg.Image."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def decode(raw, msgtype: str):
    """Raw CDR -> rclpy message (the same bytes the node's subscription would get);
    ValueError when the bytes are not such a message (a broken recording)."""
    from rclpy.serialization import deserialize_message

    try:
        return deserialize_message(bytes(raw), message_class(msgtype))
    except Exception as exc:  # noqa: BLE001 - rclpy raises RMWError (a RuntimeError) and others
        raise ValueError(f"a {msgtype} message that does not deserialize ({' '.join(str(exc).split())[:120]})") from None


def header_stamp_ns(raw) -> int:
    """Header stamp of a raw CDR message that starts with std_msgs/Header (Image,
    CameraInfo, ...) without deserializing the payload: 4 bytes encapsulation, then
    int32 sec, uint32 nanosec, in the byte order the encapsulation names."""
    if len(raw) < 12:
        raise ValueError(f"message of {len(raw)} bytes is too short to hold a header")
    order = "<" if raw[1] & 1 else ">"  # CDR_LE = 0x0001, CDR_BE = 0x0000
    sec, nanosec = struct.unpack_from(order + "iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


def stamp_ns(header_msg) -> int:
    return int(header_msg.stamp.sec) * 1_000_000_000 + int(header_msg.stamp.nanosec)
