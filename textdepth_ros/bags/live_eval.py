"""`textdepth bag-eval --live`: the bag through a real depth_node over real DDS.

One process holds a small rclpy node that replays the bag (replay.py) and receives the
depth node's outputs; depth_node itself runs as a subprocess started exactly as the
launch file starts it (same YAML), in its own namespace so nothing else on the domain
is disturbed. Ground truth never crosses DDS: it is read from the bag beside the replay.

Every wait has a deadline: node start (--start-timeout), the replay itself (bag length
/ rate), and the drain after it (no output for --drain-timeout, or every frame back).
"""
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from textdepth_ros.errors import UserError
from textdepth_ros.image_limits import DEFAULT_MAX_PIXELS
from textdepth_ros.bags import bagio
from textdepth_ros.ros import topics
from textdepth_ros.ros.node_process import NodeProcess, depth_node_argv

NAMESPACE = "/textdepth_bag_eval"
# What --record writes: the node's outputs, under the same names as the node publishes them.
RECORDED = {topics.DEPTH: bagio.IMAGE_TYPE, topics.UNCERTAINTY: bagio.IMAGE_TYPE, topics.CAMERA_INFO: bagio.CAMERA_INFO_TYPE}


def live_name(bag_topic: str) -> str:
    """Bag topics are replayed under our namespace: a camera driver or a real node on the
    same machine and domain neither feeds nor hears this evaluation."""
    return NAMESPACE + "/" + bag_topic.lstrip("/")


def live_image_topics(plan) -> tuple:
    """(what `image` is remapped to, the live topic the bag's images go out on). A
    compressed stream goes out as image_transport names it, `<base>/compressed`."""
    if plan.image_type != bagio.COMPRESSED_TYPE:
        return live_name(plan.image_topic), live_name(plan.image_topic)
    suffix = "/" + bagio.COMPRESSED_SUFFIX["color"]
    base = plan.image_topic[: -len(suffix)] if plan.image_topic.endswith(suffix) else plan.image_topic
    return live_name(base), live_name(base) + suffix


def node_command(params: dict, plan, text_topic: str, extra_params=(), folder=None) -> list:
    """depth_node with the params file (as the launch file runs it) plus overrides."""
    remaps = {"image": live_image_topics(plan)[0], "text": text_topic}
    if plan.camera_info_topic:
        remaps["camera_info"] = live_name(plan.camera_info_topic)
    # Warm up at the bag's size: the first real frame then costs what the others do.
    overrides = {"warmup_height": plan.height, "warmup_width": plan.width}
    overrides.update({name: params[name] for name in ("model_config", "checkpoint", "device")
                      if params.get(name) not in (None, "")})
    overrides["fp16"] = bool(params.get("fp16"))
    overrides["transport"] = "compressed" if plan.image_type == bagio.COMPRESSED_TYPE else "raw"
    cmd = depth_node_argv(overrides, resolved_params_file(params, folder), NAMESPACE, remaps)
    for item in extra_params:
        if ":=" not in item:
            raise UserError(f"--node-param wants NAME:=VALUE, got {item!r}")
        cmd += ["-p", item]
    return cmd


def resolved_params_file(params: dict, folder=None) -> str:
    """The parameters bag-eval resolved from the user's file, for the node in our own
    namespace (their file may be keyed for another one): a file keyed '/**' in `folder`."""
    import yaml

    values = {name: value for name, value in params.items() if not name.startswith("_")}
    path = Path(folder or tempfile.mkdtemp(prefix="textdepth_bag_eval_")) / "depth_node_params.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
    return str(path)


def run_live(args, plan, params) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from textdepth_ros.bags.scoring import add_bag_ground_truth, make_scorer
    from textdepth_ros.ros.conversions import image_to_numpy
    from textdepth_ros.ros.fastdds_profile import use_shm_profile
    from textdepth_ros.bags.replay import Replayer, publisher_qos, replay_in_thread

    use_shm_profile()  # sets the env var the node subprocess inherits, too
    # The whole graph is on this machine: do not announce it on the robot's network.
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    scorer = make_scorer(args)
    text_topic = live_name(plan.text_topic or "fixed_text")
    log_dir = tempfile.mkdtemp(prefix="textdepth_bag_eval_")
    cmd = node_command(params, plan, text_topic, args.node_param, log_dir)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bag_eval", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    state = {"in": 0, "out": 0, "unknown": 0, "last_out": None, "max_latency": 0.0}
    sent = {}  # image stamp -> (monotonic publish time, bag log time)
    recorder = None
    recorded = {}  # recorded topic (besides depth) -> messages written

    def spin_until(condition, seconds, what, proc=None):
        deadline = time.monotonic() + seconds
        while not condition():
            if proc is not None and not proc.alive():
                raise UserError(f"depth_node exited (code {proc.proc.returncode}) {what}:\n{proc.log_tail()}")
            if time.monotonic() > deadline:
                return False
            executor.spin_once(timeout_sec=0.05)
        return True

    def on_published(topic, log_time, raw, wall):
        if topic == plan.depth_topic:
            add_bag_ground_truth(scorer, raw, args.gt_scale, wall, plan.depth_type,
                                 int(params.get("max_pixels", DEFAULT_MAX_PIXELS)))
        elif topic == plan.image_topic:
            sent[bagio.header_stamp_ns(raw)] = (wall, log_time)
            state["in"] += 1

    def on_depth(raw):
        now = time.monotonic()
        msg = deserialize_message(raw, Image)
        stamp = bagio.stamp_ns(msg.header)
        if stamp not in sent:
            state["unknown"] += 1
            return
        wall, log_time = sent[stamp]
        latency = now - wall
        state["out"] += 1
        state["last_out"], state["max_latency"] = now, max(state["max_latency"], latency)
        scorer.add_prediction(stamp, image_to_numpy(msg).astype("float32"), latency_ms=latency * 1000.0)
        if recorder is not None:
            recorder.write_raw(f"/{topics.DEPTH}", log_time + int(latency * 1e9), raw)

    def record(topic):
        def callback(raw):
            stamp = bagio.header_stamp_ns(raw)
            if stamp in sent:
                recorded[topic] += 1
                recorder.write_raw(f"/{topic}", sent[stamp][1] + int((time.monotonic() - sent[stamp][0]) * 1e9), raw)
        return callback

    try:
        live_topics = {t: live_name(t) for t in (plan.camera_info_topic, plan.text_topic) if t}
        live_topics[plan.image_topic] = live_image_topics(plan)[1]
        replayer = Replayer(node, args.bag, live_topics,
                            rate=args.rate, latched=[plan.text_topic] if plan.text_topic else [], observe=[plan.depth_topic])
        if not plan.text_topic:
            from std_msgs.msg import String

            fixed = node.create_publisher(String, text_topic, publisher_qos(bagio.STRING_TYPE, transient_local=True))
            fixed.publish(String(data=args.text))
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        depth_sub = node.create_subscription(Image, f"{NAMESPACE}/{topics.DEPTH}", on_depth, reliable, raw=True)
        if args.record:
            recorder = bagio.BagWriter(args.record, overwrite=False).__enter__()
            for topic, msgtype in RECORDED.items():
                recorder.add_topic(f"/{topic}", msgtype)
                if topic != topics.DEPTH and (topic != topics.CAMERA_INFO or plan.camera_info_topic):
                    recorded[topic] = 0
                    node.create_subscription(Image if msgtype == bagio.IMAGE_TYPE else bagio.message_class(msgtype),
                                             f"{NAMESPACE}/{topic}", record(topic), reliable, raw=True)

        proc = NodeProcess(cmd, Path(log_dir) / "depth_node.log")
        try:
            print(f"starting depth_node (params {params['_file']}; log {proc.log_path}) ...", file=sys.stderr)

            def node_follows(pub):  # the node's inputs adapt to our reliable publishers within a second
                readers = node.get_subscriptions_info_by_topic(pub.topic_name)
                return pub.get_subscription_count() > 0 and all(
                    r.qos_profile.reliability == ReliabilityPolicy.RELIABLE for r in readers)

            ready = spin_until(lambda: depth_sub.get_publisher_count() > 0 and all(
                node_follows(p) for p in replayer.publishers.values()), args.start_timeout, "while starting", proc)
            if not ready:
                raise UserError(f"depth_node did not subscribe within --start-timeout {args.start_timeout:g} s:\n"
                                f"{proc.log_tail()}")
            thread, failure = replay_in_thread(replayer, on_published)
            try:
                spin_until(lambda: not thread.is_alive(), float("inf"), "during the replay", proc)
            finally:
                replayer.stop()
                thread.join(10.0)
            if failure:
                raise UserError(f"the replay stopped at {failure[0]}: no metrics for an incomplete replay")
            # Drain: frames still in the node. A dropped frame never answers, so stop once
            # the node has been quiet for longer than any frame took.
            end = time.monotonic()

            def drained():
                # Done when every frame is back, with its companions when recording.
                if state["out"] >= state["in"] and all(n >= state["out"] for n in recorded.values()):
                    return True
                quiet = max(args.drain_timeout, 3.0 * state["max_latency"])
                return time.monotonic() - max(end, state["last_out"] or end) > quiet

            spin_until(drained, float("inf"), "while draining", proc)
        finally:
            code = proc.stop()
            if code not in (0, -signal.SIGINT, None):
                print(f"note: depth_node exited with code {code} (log: {proc.log_path})", file=sys.stderr)
    finally:
        if recorder is not None:
            recorder.__exit__(None, None, None)
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    if state["out"] == 0:
        raise UserError(f"depth_node published no depth for {state['in']} images; its log ({proc.log_path}):\n"
                        f"{proc.log_tail()}")
    result = {"mode": "live", "model": f"depth_node {params.get('model_config', '?')}"
              + (f" + {params['checkpoint']}" if params.get("checkpoint") else " (untrained)"),
              "frames_in": state["in"], "frames_out": state["out"], "frames_dropped": state["in"] - state["out"],
              "latency_kind": "end-to-end latency (image published -> depth received)", "scorer": scorer,
              "node_log": str(proc.log_path)}
    if state["unknown"]:
        result["outputs_with_unknown_stamp"] = state["unknown"]
    if args.record:
        result["recorded_bag"] = args.record
    return result
