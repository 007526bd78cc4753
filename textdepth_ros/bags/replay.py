"""Replay a rosbag2 into live topics, like `ros2 bag play` (which is not installable
here): messages go out as the raw CDR bytes stored in the bag, on the bag's schedule
(log times) divided by `rate`. With `clock=True` it also publishes /clock from the
header stamps of the images it plays, so nodes with use_sim_time follow the camera.

Used by `textdepth bag-eval --live`; also a small stand-in for `ros2 bag play`:
  python -m textdepth_ros.bags.replay BAG [--rate 0.5] [--clock] [--topics /a /b]
"""
import argparse
import sys
import threading
import time

from textdepth_ros.errors import UserError
from textdepth_ros.bags import bagio


def publisher_qos(msgtype: str, transient_local: bool = False):
    """Reliable publishers (a best-effort subscriber still matches them); the scene text is
    transient local so a node that subscribes late still gets the last description."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    if transient_local:
        return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class Replayer:
    """Publishes bag topics on `node`. `topics`: {bag topic: live topic name}; `observe`:
    bag topics that are read in order and handed to the callback but not published."""

    def __init__(self, node, bag_path, topics: dict, rate: float = 1.0, clock: bool = False,
                 latched=(), observe=(), image_type: str = bagio.IMAGE_TYPE):
        if not rate > 0:
            raise UserError(f"replay rate must be positive, got {rate}")
        self.bag_path, self.rate, self.topics = bag_path, float(rate), dict(topics)
        reader = bagio.open_reader(bag_path)
        try:
            table = bagio.topic_table(reader)
        finally:
            reader.close()
        self.observe = [t for t in observe if t not in self.topics]
        missing = [t for t in [*self.topics, *self.observe] if t not in table]
        if missing:
            raise UserError(f"the bag has no topic {', '.join(missing)} (it has {', '.join(sorted(table)) or 'none'})")
        self.msgtypes = {t: table[t][0] for t in self.topics}
        self.publishers = {
            topic: node.create_publisher(bagio.message_class(self.msgtypes[topic]), live,
                                         publisher_qos(self.msgtypes[topic], topic in latched))
            for topic, live in self.topics.items()
        }
        self._image_topics = {t for t, m in self.msgtypes.items() if m == image_type}
        self._clock_pub = None
        if clock:
            from rclpy.qos import QoSProfile
            from rosgraph_msgs.msg import Clock

            self._clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        self.published = {t: 0 for t in self.topics}
        self.stopped = threading.Event()
        self.position = "the start of the bag"  # the message being played, for an error line

    def stop(self) -> None:
        self.stopped.set()

    def run(self, on_published=None) -> dict:
        """Play the bag once (blocking; call from a thread while the node spins elsewhere).

        on_published(topic, log_time_ns, raw, wall_time) runs right after each publish;
        wall_time is time.monotonic() at the publish. Returns messages published per topic."""
        reader = bagio.open_reader(self.bag_path)
        try:
            start_wall, first_log = None, None
            for index, (topic, log_time, raw) in enumerate(bagio.iter_raw(reader, [*self.topics, *self.observe])):
                self.position = f"message {index + 1} of the bag ({topic}, log time {log_time} ns)"
                if first_log is None:
                    start_wall, first_log = time.monotonic(), log_time
                due = start_wall + (log_time - first_log) / 1e9 / self.rate
                # Event.wait, not sleep: stop() ends the replay at once.
                if self.stopped.wait(max(0.0, due - time.monotonic())):
                    break
                raw = bytes(raw)
                if topic not in self.publishers:  # observed only
                    if on_published is not None:
                        on_published(topic, log_time, raw, time.monotonic())
                    continue
                if self._clock_pub is not None and topic in self._image_topics:
                    self._publish_clock(bagio.header_stamp_ns(raw))
                self.publishers[topic].publish(raw)
                wall = time.monotonic()
                self.published[topic] += 1
                if on_published is not None:
                    on_published(topic, log_time, raw, wall)
        finally:
            reader.close()
        return dict(self.published)

    def _publish_clock(self, stamp_ns: int) -> None:
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock

        self._clock_pub.publish(Clock(clock=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)))


def replay_in_thread(replayer: Replayer, on_published=None) -> tuple:
    """(thread, failures): `replayer.run` started on a daemon thread. An exception ends the
    replay and is kept in `failures` as one line naming the message it stopped at (a
    replay that did not finish is a failed run, never a shorter one)."""
    failures = []

    def replay():
        try:
            replayer.run(on_published=on_published)
        except Exception as exc:  # noqa: BLE001 - the caller reports it
            failures.append(f"{replayer.position}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")

    thread = threading.Thread(target=replay, daemon=True)
    thread.start()
    return thread, failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m textdepth_ros.bags.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", help="rosbag2 folder (mcap or sqlite3)")
    parser.add_argument("--rate", type=float, default=1.0, help="speed factor (1 = recorded rate)")
    parser.add_argument("--clock", action="store_true", help="publish /clock from the images' header stamps")
    parser.add_argument("--topics", nargs="+", help="bag topics to play (default: all)")
    parser.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SECONDS",
                        help="before playing, wait up to this long until every topic has a subscriber (default 0)")
    parser.add_argument("--latched", nargs="*", default=[bagio.DEFAULT_TOPICS["text"]],
                        help="topics published transient-local (default: %(default)s)")
    args = parser.parse_args(argv)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from textdepth_ros.ros.fastdds_profile import use_shm_profile

    try:
        reader = bagio.open_reader(args.bag)
        table = bagio.topic_table(reader)
        reader.close()
        topics = args.topics or sorted(table)
        use_shm_profile()
        rclpy.init()
        node = rclpy.create_node("bag_replay")
        replayer = Replayer(node, args.bag, {t: t for t in topics}, args.rate, args.clock, latched=args.latched)
    except UserError as exc:
        print(f"replay: error: {exc}", file=sys.stderr)
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    deadline = time.monotonic() + args.wait_for_subscribers
    while time.monotonic() < deadline and any(p.get_subscription_count() == 0 for p in replayer.publishers.values()):
        executor.spin_once(timeout_sec=0.05)
    thread = threading.Thread(target=replayer.run, daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            executor.spin_once(timeout_sec=0.1)
    except KeyboardInterrupt:
        replayer.stop()
    thread.join(5.0)
    print("published: " + ", ".join(f"{t} {n}" for t, n in replayer.published.items()))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
