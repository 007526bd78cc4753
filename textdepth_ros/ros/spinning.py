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


def run_until_shutdown(node, on_stop=None) -> int:
    """Spin `node` on a single-threaded executor (the node's own worker threads do the
    heavy work) until shutdown or Ctrl-C; then `on_stop()`, destroy the node, shut rclpy
    down. Returns the process exit code, 0."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        spin_until_shutdown(executor)
    finally:
        if on_stop is not None:
            on_stop()
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown(context=node.context)
    return 0
