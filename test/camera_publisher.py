"""A camera in its own process, as a driver or `ros2 bag play` is: DEFAULT Fast DDS
settings unless the caller's environment names a profile. Publishes --count rgb8
images of --height x --width at --rate Hz with the given reliability once it reads a
line on stdin, then prints `published N` and exits. With --alternate S the publisher is
destroyed and re-created every S seconds, reliable and best effort in turn (a driver
restarted with other settings), and the last line also says how many of each went out.

    python test/camera_publisher.py --topic /cam/image --reliability reliable
"""
import argparse
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def subscribed(node, pub, topic, wait_for) -> bool:
    if pub.get_subscription_count() == 0:
        return False
    readers = node.get_subscriptions_info_by_topic(topic)
    return wait_for == "any" or all(r.qos_profile.reliability == ReliabilityPolicy.RELIABLE for r in readers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topic", required=True, help="image topic")
    parser.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable", help="offered QoS")
    parser.add_argument("--count", type=int, default=10, help="images to publish")
    parser.add_argument("--rate", type=float, default=2.0, help="images per second")
    parser.add_argument("--height", type=int, default=480, help="image height")
    parser.add_argument("--width", type=int, default=640, help="image width")
    parser.add_argument("--wait-for", choices=("any", "reliable"), default="any",
                        help="before 'ready': wait for a subscriber (any), or for every subscriber to be reliable")
    parser.add_argument("--alternate", type=float, default=0.0,
                        help="re-create the publisher every this many seconds, switching reliability (0: never)")
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("camera_publisher")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy[args.reliability.upper()])
    pub = node.create_publisher(Image, args.topic, qos)
    msg = Image(height=args.height, width=args.width, encoding="rgb8", step=args.width * 3)
    msg.header.frame_id = "camera_optical"
    msg.data = np.random.default_rng(0).integers(0, 255, args.height * args.width * 3, dtype=np.uint8).tobytes()
    while not subscribed(node, pub, args.topic, args.wait_for):
        rclpy.spin_once(node, timeout_sec=0.1)
    print("ready", flush=True)
    sys.stdin.readline()  # the test says when
    sent = {"reliable": 0, "best_effort": 0}
    reliability, switched = args.reliability, time.monotonic()
    for i in range(args.count):
        if args.alternate and time.monotonic() - switched >= args.alternate:
            node.destroy_publisher(pub)
            reliability = "best_effort" if reliability == "reliable" else "reliable"
            qos.reliability = ReliabilityPolicy[reliability.upper()]
            pub, switched = node.create_publisher(Image, args.topic, qos), time.monotonic()
        msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + i, 0
        pub.publish(msg)
        sent[reliability] += 1
        rclpy.spin_once(node, timeout_sec=0)
        time.sleep(1.0 / args.rate)
    time.sleep(2.0)  # let a reliable writer finish repairs before its participant goes
    print(f"published {args.count} (reliable {sent['reliable']}, best_effort {sent['best_effort']})", flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
