"""make_executor: which rclpy executor a node process spins on (the `executor` parameter)."""
import sys

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor

from ros_helpers import default_executor
from textdepth_ros.errors import UserError
from textdepth_ros.ros.spinning import make_executor

HAS_EVENTS = default_executor() == "EventsExecutor"


@pytest.fixture
def context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


def kind_of(executor) -> str:
    return type(executor).__name__


@pytest.mark.parametrize("kind", ["auto", "events"])
def test_auto_and_events_give_the_events_executor_where_rclpy_has_it(context, kind):
    executor, warning = make_executor(context, kind)
    try:
        assert kind_of(executor) == ("EventsExecutor" if HAS_EVENTS else "SingleThreadedExecutor")
        assert (warning is None) == (HAS_EVENTS or kind == "auto")
    finally:
        executor.shutdown()


def test_single_gives_the_single_threaded_executor(context):
    executor, warning = make_executor(context, "single")
    assert isinstance(executor, SingleThreadedExecutor) and warning is None
    executor.shutdown()


def test_an_rclpy_without_events_executor_falls_back(context, monkeypatch):
    """Older rclpy releases (no rclpy.experimental): `auto` quietly, `events` with one warning."""
    monkeypatch.setitem(sys.modules, "rclpy.experimental", None)  # import now raises ImportError
    auto, auto_warning = make_executor(context, "auto")
    events, events_warning = make_executor(context, "events")
    assert isinstance(auto, SingleThreadedExecutor) and auto_warning is None
    assert isinstance(events, SingleThreadedExecutor) and "has no rclpy.experimental.EventsExecutor" in events_warning
    auto.shutdown()
    events.shutdown()


def test_an_unknown_executor_is_a_user_error(context):
    with pytest.raises(UserError, match="unknown executor 'multi'"):
        make_executor(context, "multi")
