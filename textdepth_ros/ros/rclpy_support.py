"""The rclpy this package runs on: ROS 2 Jazzy (rclpy 7.x) and Kilted (9.x), both tested
(docs/install.md). Humble's rclpy (3.x) lacks two APIs the node is built on, both added in
Iron: `rclpy.event_handler` (Humble calls it rclpy.qos_event) for the lost-message and
incompatible-QoS events of the inputs, and `Node.add_post_set_parameters_callback` for
run-time parameter changes. Importing the node on such an rclpy ends with one line saying
so, not a traceback (test_rclpy_support.py hides each API to check it).
"""
from rclpy.node import Node

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:
    SubscriptionEventCallbacks = None

MISSING = [name for name, present in (
    ("rclpy.event_handler", SubscriptionEventCallbacks is not None),
    ("Node.add_post_set_parameters_callback", hasattr(Node, "add_post_set_parameters_callback")),
) if not present]
if MISSING:
    raise SystemExit(f"textdepth_ros needs ROS 2 Jazzy or newer: this rclpy lacks {' and '.join(MISSING)} "
                     "(ROS 2 Humble is not supported; see docs/install.md)")
