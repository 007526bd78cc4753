"""The executor loop every node of this package runs."""
import rclpy
from rclpy.executors import ExternalShutdownException


def spin_until_shutdown(executor) -> None:
    """spin_once in a loop until shutdown or Ctrl-C. Not executor.spin(): on this
    machine spin() was seen to miss SIGINT, a short spin_once loop did not."""
    try:
        while rclpy.ok(context=executor.context):
            executor.spin_once(timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
