"""`managed_depth_node`: depth_node as a ROS 2 managed (lifecycle) node, as nav2 and
other depth nodes offer it, for a lifecycle manager or `ros2 lifecycle set`:

  configure   load the model (and warm it up); a bad checkpoint fails the transition
  activate    subscribe the inputs, start the worker: frames in, depth out
  deactivate  unsubscribe and stop the worker (the model stays loaded)
  cleanup     free the model and its GPU memory
  shutdown    all of the above, from any state

Same parameters, topics and diagnostics as depth_node (launch: `managed:=true`).
"""
import ctypes
import gc
import sys

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from textdepth_ros.errors import UserError
from textdepth_ros.ros.depth_node import NODE_NAME, DepthNode, created
from textdepth_ros.ros.fastdds_profile import use_shm_profile
from textdepth_ros.ros.spinning import run_node


class ManagedDepthNode(DepthNode, LifecycleNode):
    """DepthNode's work split over the lifecycle transitions (MRO: DepthNode's
    __init__ builds a LifecycleNode underneath)."""

    def __init__(self, **node_kwargs):
        super().__init__(**node_kwargs)
        self._serving = False

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.load_model()
        except UserError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self.release_model()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("configured: model loaded; activate to serve")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.serve()
        self._serving = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_serving()
        self.get_logger().info("deactivated: not subscribed; the model stays loaded")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release_model()
        self.get_logger().info("cleaned up: model released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        shut_down(self)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        shut_down(self)
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------------------
    def stop_serving(self, hurry=None) -> bool:
        """Undo serve(): worker and publisher stopped, inputs and timers destroyed.
        False: a dropped frame's thread is still inside the model (see DepthNode.stop)."""
        if not self._serving:
            return True
        finished = self.stop(hurry)
        for subscription in self.inputs:
            subscription.destroy()
        self.inputs = []
        self.destroy_timer(self._diagnostics_timer)
        self._serving = False
        return finished

    def release_model(self) -> None:
        """Drop every reference to the network, then hand the memory back: cached GPU
        blocks to the driver, freed heap to the OS (glibc keeps it otherwise: measured,
        the process's RSS fell only after malloc_trim)."""
        if self.estimator is None:
            return
        device = str(self.estimator.device)
        if self.auto_text is not None:  # the CLIP image tower and its publishers
            self.auto_text.release()
            self.auto_text = None
        self.estimator = None
        self._tokenizer = None
        gc.collect()
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc: the allocator keeps what it keeps
            pass


def announce(node) -> None:
    node.get_logger().info("unconfigured: waiting for the configure transition")


def shut_down(node, hurry=None) -> bool:
    """Stop serving, then free the model (shutdown and error transitions, and process exit)."""
    finished = node.stop_serving(hurry)
    node.release_model()
    return finished


def main(args=None) -> int:
    use_shm_profile()  # before rclpy.init: Fast DDS reads it when the participant is created
    return run_node(created(ManagedDepthNode, args), start=announce, stop=shut_down, args=args, name=NODE_NAME)


if __name__ == "__main__":
    sys.exit(main())
