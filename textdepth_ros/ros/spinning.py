"""How every node process of this package starts, spins and stops.

The order on a stop request (SIGINT, SIGTERM or SIGHUP; a terminal's Ctrl-C sends
SIGINT to the whole process group, `ros2 launch` sends a second one of its own):
  1. stop spinning: no more callbacks, so no new frames, texts or parameter changes;
  2. `stop(node, hurry)`: the node finishes what is in flight (the depth node waits a
     little for the frame inside the model; a second signal sets `hurry` and drops it);
  3. destroy the node and shut the context down, while nothing else uses them.
rclpy's own signal handlers are not installed: they shut the context down the
moment a signal lands, under a worker that is still publishing ("context is
invalid"), and a second SIGINT raised KeyboardInterrupt inside destroy_node. Ours
only set flags, so no signal can interrupt the teardown itself.

After the teardown nothing is left to stop, so the stop signals are ignored from then
on: Python's finalization resets their handlers to the default action before its
seconds of module teardown (torch), and launch's SIGINT, landing there, killed the node
(exit -2, or 130 from a shell). If a thread is still running then (a dropped frame's,
inside torch: a lifecycle transition may have dropped it long before), the process
leaves with os._exit instead of finalizing: finalization ends such a thread with
pthread_exit when it next takes the GIL, from inside pybind11's gil_scoped_release
destructor in torch, and unwinding out of that noexcept destructor calls std::terminate
(SIGABRT, exit -6).

The executor is rclpy's EventsExecutor where this rclpy has it (`make_executor`): its
waiting and bookkeeping are C++ (no wait set rebuilt in Python for every message), so
the executor thread holds the GIL less, which the inference worker and the publisher
thread need (bench/gil_bench.py --compare-executors).
"""
import ctypes
import inspect
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from textdepth_ros.errors import UserError

_TRY_SHUTDOWN_UNINSTALLS = "uninstall_handlers" in inspect.signature(rclpy.try_shutdown).parameters
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXECUTORS = ("auto", "events", "single")


def make_executor(context, kind: str = "auto"):
    """(executor, warning or None) for `kind`: `events` is rclpy.experimental.EventsExecutor,
    `single` SingleThreadedExecutor, `auto` the first where this rclpy has it (Kilted and
    later, Jazzy from rclpy 7.1.4; without it `events` falls back with a warning)."""
    if kind not in EXECUTORS:
        raise UserError(f"unknown executor '{kind}' ({', '.join(EXECUTORS)})")
    events_executor = _events_executor_class()
    if kind != "single" and events_executor is not None:
        return events_executor(context=context), None
    warning = None
    if kind == "events":
        warning = ("executor 'events' asked for but this rclpy has no rclpy.experimental.EventsExecutor: "
                   "using SingleThreadedExecutor")
    return SingleThreadedExecutor(context=context), warning


def spins_on_events_executor(kind: str) -> bool:
    """Whether make_executor(kind) gives rclpy's EventsExecutor."""
    return kind != "single" and _events_executor_class() is not None


def _events_executor_class():
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return None
    return EventsExecutor


class StopRequests:
    """SIGINT, SIGTERM and SIGHUP as flags: the first one asks to stop, a later one to
    hurry. While `interrupting()` (start-up: loading a model, warming up) the first one
    raises KeyboardInterrupt instead, since there is nothing to finish yet."""

    def __init__(self):
        self.requested = threading.Event()
        self.hurry = threading.Event()
        self.signal_name = None
        self._interrupt = False

    def install(self) -> "StopRequests":
        for sig in STOP_SIGNALS:
            if sig == signal.SIGHUP and signal.getsignal(sig) is signal.SIG_IGN:
                continue  # started with `nohup`: it is meant to outlive the terminal
            signal.signal(sig, self._on_signal)  # SIGINT even where a shell's `&` ignored it, as rclpy does
        return self

    def _on_signal(self, signum, _frame) -> None:
        if self.requested.is_set():
            self.hurry.set()
            return
        self.signal_name = signal.Signals(signum).name
        self.requested.set()
        if self._interrupt:
            self._interrupt = False  # a second signal during the clean-up must not raise again
            raise KeyboardInterrupt

    def ignore(self) -> None:
        """From now on a stop signal does nothing (the node is gone; see the module's docstring)."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    @contextmanager
    def interrupting(self):
        self._interrupt = not self.requested.is_set()
        try:
            yield
        finally:
            self._interrupt = False


def spin_until_stop(executor, requests: StopRequests) -> None:
    """spin_once in a short loop (executor.spin() was seen to miss signals here)."""
    try:
        while not requests.requested.is_set() and rclpy.ok(context=executor.context):
            executor.spin_once(timeout_sec=0.2)
    except ExternalShutdownException:
        pass


def run_node(create, start=None, stop=None, args=None, name: str = "node") -> int:
    """The life of a node process; returns its exit code.

    `create()` builds the node, `start(node)` readies it (both may raise UserError:
    one FATAL line, exit 1; a signal meanwhile: exit 0), then the node spins (on the
    executor its `executor_kind` names, see make_executor; default auto) until a
    stop request, then `stop(node, hurry)` finishes its work. If a thread still runs
    after the teardown (a dropped frame's), the process leaves with exit_now instead of
    returning. `name` labels lines logged before the node exists."""
    requests = StopRequests().install()  # before anything slow, so Ctrl-C is never lost
    try:
        code = _run(requests, create, start, stop, args, name)
    finally:
        requests.ignore()
    if _threads_running():  # finalizing under them could abort: leave without it
        exit_now(code)
    return code


def _run(requests, create, start, stop, args, name) -> int:
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        with requests.interrupting():
            node = create()
            if start is not None:
                start(node)
            executor, warning = make_executor(node.context, getattr(node, "executor_kind", "auto"))
    except KeyboardInterrupt:
        _logger(node, name).info(f"{requests.signal_name}: stopped while starting")
        _close(node)
        return 0
    except UserError as exc:
        _logger(node, name).fatal(f"cannot start: {exc}")
        _close(node)
        return 1
    if warning:
        node.get_logger().warning(warning)
    else:
        node.get_logger().info(f"spinning on {type(executor).__name__}")
    executor.add_node(node)
    spin_until_stop(executor, requests)
    if requests.signal_name:
        node.get_logger().info(f"{requests.signal_name}: stopping")
    if stop is not None:
        stop(node, requests.hurry)
    executor.remove_node(node)
    executor.shutdown(timeout_sec=0)
    _close(node)
    return 0


def _threads_running() -> list:
    """Python threads other than this one still alive after the teardown."""
    return [t for t in threading.enumerate() if t is not threading.current_thread() and t.is_alive()]


def _logger(node, name):
    return node.get_logger() if node is not None else rclpy.logging.get_logger(name)


def _close(node) -> None:
    if node is not None:
        node.destroy_node()
    if _TRY_SHUTDOWN_UNINSTALLS:  # Kilted and later: by default it would uninstall signal handlers
        rclpy.try_shutdown(uninstall_handlers=False)
    else:  # Jazzy: it never does, and has no such argument
        rclpy.try_shutdown()


def exit_now(code: int) -> None:
    """Leave at once, output flushed, without interpreter teardown."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # SIGHUP: the terminal may be gone
    ctypes.CDLL(None).fflush(None)  # C stdio: rcutils writes the ROS log lines there
    os._exit(code)
